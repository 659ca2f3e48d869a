/**
 * create_shipping_label: picks a carrier for the destination, weighs the parcel and issues a tracking
 * number (derived from the address and items, so the same order always gets the same label). Sets
 * `fulfillment_status`, which the workflow's final agent reports. Destinations no ground carrier
 * serves fail the branch.
 */
import { createHash } from 'node:crypto';

interface OrderItem {
  readonly sku: string;
  readonly quantity: number;
}

interface Address {
  readonly street: string;
  readonly city: string;
  readonly state: string;
  readonly zip: string;
}

const WEST = new Set(['CA', 'OR', 'WA', 'NV', 'AZ', 'UT', 'ID']);
const NOT_SERVED = new Set(['AK', 'HI']);
const KG_PER_UNIT = 0.45;

export default function createShippingLabel(args: { readonly address: Address; readonly items: readonly OrderItem[] }) {
  const { address, items } = args;
  if (NOT_SERVED.has(address.state)) {
    const error = new Error(`no ground carrier serves ${address.state}; this order needs air freight`);
    // Retrying will not help: tell the engine so (tools here import only node built-ins).
    Object.assign(error, { retryable: false });
    throw error;
  }
  const units = items.reduce((sum, item) => sum + item.quantity, 0);
  const digest = createHash('sha256').update(JSON.stringify({ address, items })).digest('hex');
  return {
    shipping_label: {
      carrier: WEST.has(address.state) ? 'WestGround' : 'EastGround',
      service: units > 10 ? 'freight' : 'parcel',
      weight_kg: Math.round(units * KG_PER_UNIT * 100) / 100,
      tracking_number: `TRK${digest.slice(0, 10).toUpperCase()}`,
      ship_to: `${address.street}, ${address.city}, ${address.state} ${address.zip}`,
    },
    fulfillment_status: 'ready_to_ship',
  };
}
