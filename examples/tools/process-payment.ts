/**
 * process_payment: authorises and captures a payment against per-method limits (in-memory rules, no
 * payment provider is called). A decline is a business outcome, not an error: it returns
 * `payment_successful: false` and the reason, which the workflow's `fulfillment_check` reads.
 * The transaction id derives from the idempotency key, so a retried attempt yields the same id.
 */
import { createHash } from 'node:crypto';

interface Args {
  readonly amount: number;
  readonly payment_method: string;
}

/** Largest amount each method may be charged in one transaction. */
const LIMITS: Readonly<Record<string, number>> = {
  credit_card: 5000,
  debit_card: 2500,
  paypal: 10000,
};

export default function processPayment(args: Args, ctx: { readonly idempotencyKey: string }) {
  const limit = LIMITS[args.payment_method];
  if (limit === undefined) {
    return { payment_successful: false, payment_status: 'declined', decline_reason: `payment method ${args.payment_method} is not supported` };
  }
  if (args.amount > limit) {
    return {
      payment_successful: false,
      payment_status: 'declined',
      decline_reason: `amount ${args.amount.toFixed(2)} exceeds the ${args.payment_method} limit of ${limit.toFixed(2)}`,
    };
  }
  const transaction_id = `TXN-${createHash('sha256').update(ctx.idempotencyKey).digest('hex').slice(0, 12).toUpperCase()}`;
  return { payment_successful: true, payment_status: 'captured', transaction_id, amount_charged: args.amount };
}
