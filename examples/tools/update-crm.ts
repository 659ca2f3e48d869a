/**
 * update_crm: computes the CRM update for a customer's new order: loyalty points earned (one per whole
 * currency unit) and the segment the order value puts the customer in. In-memory; no CRM is called.
 */

export default function updateCrm(args: { readonly customer_id: string; readonly order_value: number }) {
  const points = Math.floor(args.order_value);
  const segment = args.order_value >= 500 ? 'high_value' : args.order_value >= 100 ? 'regular' : 'occasional';
  return {
    crm_updated: true,
    crm_record: { customer_id: args.customer_id, last_order_value: args.order_value, loyalty_points_earned: points, segment },
  };
}
