/**
 * update_inventory: reserves an order's items against the warehouse's stock (an in-memory table) and
 * reports what remains per SKU. Fails if an item can no longer be reserved.
 */

import { STOCK, type OrderItem } from './warehouse.ts';

export default function updateInventory(args: { readonly items: readonly OrderItem[] }) {
  const inventory_reservations = args.items.map((item) => {
    const onHand = STOCK[item.sku] ?? 0;
    if (onHand < item.quantity) throw new Error(`cannot reserve ${item.quantity} x ${item.sku}: only ${onHand} on hand`);
    return { sku: item.sku, reserved: item.quantity, remaining: onHand - item.quantity };
  });
  return { inventory_updated: true, inventory_reservations };
}
