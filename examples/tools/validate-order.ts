/**
 * validate_order: checks an order's data against the shop's business rules. Pure, deterministic and
 * in-memory; runs on the worker pool. Returns `order_valid` (read by the workflow's `inventory_check`)
 * and the list of problems found.
 */

interface OrderItem {
  readonly sku: string;
  readonly quantity: number;
  readonly price: number;
}

interface Args {
  readonly order_id: string;
  readonly order_items: readonly OrderItem[];
  readonly order_total: number;
  readonly customer_email: string;
  readonly payment_method: string;
  readonly shipping_address: Readonly<Record<string, unknown>>;
}

const ACCEPTED_PAYMENT_METHODS = new Set(['credit_card', 'debit_card', 'paypal']);
const ORDER_ID = /^ORD-\d{3,}$/;
const SKU = /^ITEM-\d{3}$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const US_STATE = /^[A-Z]{2}$/;
const ZIP = /^\d{5}$/;

function cents(amount: number): number {
  return Math.round(amount * 100);
}

export default function validateOrder(args: Args) {
  const problems: string[] = [];
  if (!ORDER_ID.test(args.order_id)) problems.push(`order id ${args.order_id} is not of the form ORD-<digits>`);
  if (args.order_items.length === 0) problems.push('the order has no items');
  let totalCents = 0;
  for (const item of args.order_items) {
    if (!SKU.test(item.sku)) problems.push(`unknown SKU format ${item.sku}`);
    if (!Number.isInteger(item.quantity) || item.quantity < 1) problems.push(`${item.sku}: quantity must be a whole number of at least 1, got ${item.quantity}`);
    if (!(item.price > 0)) problems.push(`${item.sku}: price must be positive, got ${item.price}`);
    totalCents += cents(item.price) * item.quantity;
  }
  if (cents(args.order_total) !== totalCents) {
    problems.push(`order total ${args.order_total.toFixed(2)} does not match the items (${(totalCents / 100).toFixed(2)})`);
  }
  if (!EMAIL.test(args.customer_email)) problems.push(`customer email ${JSON.stringify(args.customer_email)} is not an email address`);
  if (!ACCEPTED_PAYMENT_METHODS.has(args.payment_method)) problems.push(`payment method ${args.payment_method} is not accepted`);
  const address = args.shipping_address;
  for (const field of ['street', 'city', 'state', 'zip']) {
    if (typeof address[field] !== 'string' || address[field] === '') problems.push(`shipping address has no ${field}`);
  }
  if (typeof address.state === 'string' && address.state !== '' && !US_STATE.test(address.state)) problems.push(`shipping state ${address.state} is not a two-letter code`);
  if (typeof address.zip === 'string' && address.zip !== '' && !ZIP.test(address.zip)) problems.push(`shipping zip ${address.zip} is not five digits`);

  return {
    order_valid: problems.length === 0,
    validation_errors: problems,
    validated_total: totalCents / 100,
  };
}
