/**
 * check_inventory: compares an order's items with the warehouse's stock (an in-memory table).
 * Returns `inventory_available` (read by the workflow's `payment_processing`) and the per-SKU figures.
 */

import { STOCK, type OrderItem } from './warehouse.ts';

export default function checkInventory(args: { readonly items: readonly OrderItem[] }) {
  const stock_check = args.items.map((item) => {
    const onHand = STOCK[item.sku] ?? 0;
    return { sku: item.sku, requested: item.quantity, on_hand: onHand, available: onHand >= item.quantity };
  });
  const unavailable_items = stock_check.filter((line) => !line.available).map((line) => line.sku);
  return {
    inventory_available: args.items.length > 0 && unavailable_items.length === 0,
    unavailable_items,
    stock_check,
  };
}
