/**
 * send_confirmation_email: renders the order confirmation and puts it in an outbox record (the
 * example sends no real email). The message id derives from the order and address, so a retried
 * send produces the same id and a mail relay could drop the duplicate.
 */
import { createHash } from 'node:crypto';

export default function sendConfirmationEmail(args: { readonly customer_email: string; readonly order_id: string }) {
  const digest = createHash('sha256').update(`${args.order_id}|${args.customer_email}`).digest('hex');
  return {
    confirmation_email_sent: true,
    confirmation_email: {
      to: args.customer_email,
      subject: `Your order ${args.order_id} is confirmed`,
      message_id: `<${digest.slice(0, 16)}@orders.example.com>`,
    },
  };
}
