/** The example's warehouse: units on hand per SKU (a fixed table: the example has no database). */
export interface OrderItem {
  readonly sku: string;
  readonly quantity: number;
}

export const STOCK: Readonly<Record<string, number>> = {
  'ITEM-001': 120,
  'ITEM-002': 8,
  'ITEM-003': 0,
  'ITEM-004': 3,
};
