/**
 * Seed, "Example: Complete E-commerce Order Processing", as examples/order-processing.ts implements it:
 * real pool tools (examples/tools/*), real agents on the engine's agent loop answered by the example's
 * scripted offline provider. Covers the happy path, the invalid-order, out-of-stock, declined-payment and
 * partial-fulfillment paths, the workflow-wide error handler (network errors retried, others fail) and main().
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type ExecuteOptions,
  RecordingClock,
  type RunEvent,
  type StepResult,
  Tool,
  type WorkflowEngine,
  type WorkflowResult,
} from 'jaf-workflows';
import {
  SCRIPTED_LABEL,
  createOfflineModelProvider,
  createOrderContext,
  createOrderEngine,
  createOrderProcessingWorkflow,
  main,
  sampleOrder,
  type OrderData,
} from '../../examples/order-processing.ts';
import { quietLogger } from '../helpers/logging.ts';
import { ids } from './support.ts';

const TOP_LEVEL = ['validate_order', 'inventory_check', 'payment_processing', 'fulfillment_check', 'fulfillment_agent'];
const BRANCHES = ['update_inventory', 'create_shipping_label', 'send_confirmation_email', 'update_crm'].map((id) => `fulfillment_check/order_fulfillment/${id}`);

function allSteps(steps: readonly StepResult[]): StepResult[] {
  return steps.flatMap((s) => [s, ...allSteps(s.children)]);
}

function stepAt(result: WorkflowResult, path: string): StepResult {
  const found = allSteps(result.steps).find((s) => s.path === path);
  if (found === undefined) throw new Error(`no step at ${path}; have ${allSteps(result.steps).map((s) => s.path).join(', ')}`);
  return found;
}

describe('seed: Complete E-commerce Order Processing (examples/order-processing.ts)', () => {
  let engine: WorkflowEngine;

  beforeAll(() => {
    // The example's engine (its tools, agents and two-thread pool), quiet and with instant backoff.
    engine = createOrderEngine({ logger: quietLogger(), clock: new RecordingClock() });
  });

  afterAll(async () => {
    await engine.close();
  });

  async function run(overrides: Partial<OrderData> = {}, options: ExecuteOptions = {}) {
    const provider = createOfflineModelProvider();
    const events: RunEvent[] = [];
    const result = await engine.executeWorkflow(createOrderProcessingWorkflow(), createOrderContext(overrides), {
      modelProvider: provider,
      onEvent: (e) => events.push(e),
      ...options,
    });
    const agentsAsked = provider.requests.map((r) => r.agent.name);
    return { result, provider, events, agentsAsked };
  }

  it('the workflow has the seed five top-level steps and the engine knows its tools and agents', () => {
    const workflow = createOrderProcessingWorkflow();
    expect(workflow.id).toBe('ecommerce_order_processing');
    expect(workflow.description).toBe('Complete e-commerce order processing pipeline');
    expect(ids(workflow.steps)).toEqual(TOP_LEVEL);
    expect(workflow.globalErrorHandler).toBeTypeOf('function');
    const fulfillment = workflow.steps[3]!.toDefinition();
    if (fulfillment.kind !== 'conditional' || fulfillment.ifTrue?.kind !== 'parallel') throw new Error('fulfillment_check should wrap a parallel step');
    expect(fulfillment.ifTrue).toMatchObject({ id: 'order_fulfillment', timeoutMs: 120_000, failurePolicy: 'continue_on_partial_failure', minimumSuccessCount: 3 });
    expect(ids(fulfillment.ifTrue.branches)).toEqual(['update_inventory', 'create_shipping_label', 'send_confirmation_email', 'update_crm']);
  });

  it('happy path: the seed order completes 5/5, the fulfillment runs its 4 branches at once on the pool', async () => {
    const { result, events, agentsAsked, provider } = await run();

    expect(result.status).toBe('completed');
    expect(result.error).toBeUndefined();
    expect(result.stepsCompleted).toBe(5);
    expect(result.totalSteps).toBe(5);
    expect(result.steps.map((s) => [s.stepId, s.status])).toEqual(TOP_LEVEL.map((id) => [id, 'completed']));

    expect(stepAt(result, 'validate_order').output).toEqual({ order_valid: true, validation_errors: [], validated_total: 109.97 });
    expect(stepAt(result, 'inventory_check').metadata).toMatchObject({ branch: 'true', delegatedTo: 'check_inventory' });
    expect(stepAt(result, 'inventory_check/check_inventory').output).toMatchObject({ inventory_available: true, unavailable_items: [] });
    expect(stepAt(result, 'payment_processing').metadata).toMatchObject({ branch: 'true', delegatedTo: 'process_payment' });
    const payment = stepAt(result, 'payment_processing/process_payment').output as Record<string, unknown>;
    expect(payment).toMatchObject({ payment_successful: true, payment_status: 'captured', amount_charged: 109.97 });
    expect(payment.transaction_id).toMatch(/^TXN-[0-9A-F]{12}$/);

    const fulfillment = stepAt(result, 'fulfillment_check/order_fulfillment');
    expect(fulfillment.metadata).toMatchObject({ completed: 4, failed: 0 });
    expect(fulfillment.children.map((c) => c.path).sort()).toEqual([...BRANCHES].sort());
    expect(fulfillment.children.every((c) => c.status === 'completed' && c.kind === 'tool')).toBe(true);
    // All four branches were in flight together: each started before any of them finished.
    const index = (type: string, path: string) => events.findIndex((e) => e.type === type && 'path' in e && e.path === path);
    const firstFinish = Math.min(...BRANCHES.map((p) => index('step_completed', p)));
    expect(BRANCHES.every((p) => index('step_started', p) >= 0 && index('step_started', p) < firstFinish)).toBe(true);

    const vars = result.context.variables;
    expect(vars).toMatchObject({
      order_valid: true,
      inventory_available: true,
      payment_successful: true,
      fulfillment_status: 'ready_to_ship',
      inventory_updated: true,
      confirmation_email_sent: true,
      crm_updated: true,
    });
    expect(vars.shipping_label).toMatchObject({ carrier: 'WestGround', service: 'parcel', weight_kg: 1.35 });
    expect(vars.confirmation_email).toMatchObject({ to: 'customer@example.com', subject: 'Your order ORD-12345 is confirmed' });
    expect(vars.crm_record).toMatchObject({ customer_id: 'CUST-67890', loyalty_points_earned: 109, segment: 'regular' });
    expect(vars.inventory_reservations).toEqual([
      { sku: 'ITEM-001', reserved: 2, remaining: 118 },
      { sku: 'ITEM-002', reserved: 1, remaining: 7 },
    ]);

    // Only the final agent ran; its context function gave it the fulfillment status and the tier.
    expect(agentsAsked).toEqual(['fulfillment_agent']);
    const system = provider.requests[0]!.messages[0]!.content as string;
    expect(system).toContain('Order status: ready_to_ship');
    expect(system).toContain('Customer tier: premium');
    expect(provider.requests[0]!.messages[1]).toEqual({ role: 'user', content: 'Complete order fulfillment for order ORD-12345' });
    expect(vars.final_notification).toBe(`${SCRIPTED_LABEL} Order ORD-12345 is packed and ready to ship. As a premium customer you have priority support.`);
    expect(engine.poolStats()!.threads).toBeLessThanOrEqual(2);
  });

  it('an invalid order takes the order_validation_agent path, then the inventory agent; nothing is charged or shipped', async () => {
    const { result, agentsAsked, provider } = await run({ customer_email: 'customer-at-example.com', order_total: 99.99 });

    expect(result.status).toBe('completed');
    const validation = stepAt(result, 'validate_order').output as { order_valid: boolean; validation_errors: string[] };
    expect(validation.order_valid).toBe(false);
    expect(validation.validation_errors).toEqual([
      'order total 99.99 does not match the items (109.97)',
      'customer email "customer-at-example.com" is not an email address',
    ]);
    expect(stepAt(result, 'inventory_check').metadata).toMatchObject({ branch: 'false', delegatedTo: 'order_validation_agent' });
    expect(stepAt(result, 'inventory_check/order_validation_agent')).toMatchObject({ kind: 'agent', status: 'completed' });
    expect(result.context.get('validation_resolution')).toBe('awaiting_customer');
    expect(result.context.get('validation_message')).toBe(
      `${SCRIPTED_LABEL} Order ORD-12345 is on hold until you correct: order total 99.99 does not match the items (109.97); customer email "customer-at-example.com" is not an email address.`,
    );
    // The agent's prompt carried the problems the tool found.
    expect(provider.requests[0]!.messages[0]!.content).toContain('Validation problems: ["order total 99.99');

    // As the seed is written, inventory_available is then unset, so the inventory agent handles the order.
    expect(stepAt(result, 'payment_processing').metadata).toMatchObject({ branch: 'false', delegatedTo: 'inventory_agent' });
    expect(stepAt(result, 'fulfillment_check')).toMatchObject({ status: 'skipped' });
    expect(stepAt(result, 'fulfillment_check').metadata.branch).toBe('false');
    expect(allSteps(result.steps).some((s) => s.stepId === 'process_payment' || s.stepId === 'order_fulfillment')).toBe(false);
    expect(result.context.has('payment_successful')).toBe(false);
    expect(agentsAsked).toEqual(['order_validation_agent', 'inventory_agent', 'inventory_agent', 'fulfillment_agent']);
    expect(result.context.get('final_notification')).toContain('is not fulfilled yet (status: unknown)');
    expect(result.stepsCompleted).toBe(4);
    expect(result.totalSteps).toBe(5);
  });

  it('out of stock: the inventory agent checks stock through its pool tool and backorders the item', async () => {
    const { result, agentsAsked, provider } = await run({ order_items: [{ sku: 'ITEM-003', quantity: 1, price: 19.99 }], order_total: 19.99 });

    expect(result.status).toBe('completed');
    expect(result.context.get('order_valid')).toBe(true);
    expect(result.context.get('inventory_available')).toBe(false);
    expect(stepAt(result, 'payment_processing').metadata).toMatchObject({ branch: 'false', delegatedTo: 'inventory_agent' });
    const agentStep = stepAt(result, 'payment_processing/inventory_agent');
    expect(agentStep.metadata.usage).toMatchObject({ turns: 2, toolCalls: 1 });
    // The tool call's result went back to the model as a tool message.
    const toolMessage = provider.requests[1]!.messages.find((m) => m.role === 'tool')!;
    expect(toolMessage).toMatchObject({ role: 'tool', name: 'check_inventory' });
    expect(JSON.parse(toolMessage.content as string)).toMatchObject({ status: 'executed', result: { inventory_available: false, unavailable_items: ['ITEM-003'] } });
    expect(result.context.get('backordered_skus')).toEqual(['ITEM-003']);
    expect(result.context.get('inventory_message')).toBe(`${SCRIPTED_LABEL} ITEM-003 of order ORD-12345 go on backorder; we will ship when restocked.`);
    expect(stepAt(result, 'fulfillment_check').status).toBe('skipped');
    expect(agentsAsked).toEqual(['inventory_agent', 'inventory_agent', 'fulfillment_agent']);
  });

  it('a declined payment: payment_successful is false, so fulfillment is skipped and the final agent reports it', async () => {
    const { result, agentsAsked, provider } = await run({ order_items: [{ sku: 'ITEM-001', quantity: 100, price: 60 }], order_total: 6000 });

    expect(result.status).toBe('completed');
    expect(stepAt(result, 'payment_processing/process_payment').output).toEqual({
      payment_successful: false,
      payment_status: 'declined',
      decline_reason: 'amount 6000.00 exceeds the credit_card limit of 5000.00',
    });
    expect(stepAt(result, 'fulfillment_check')).toMatchObject({ status: 'skipped' });
    expect(stepAt(result, 'fulfillment_check').children).toEqual([]);
    expect(result.context.has('fulfillment_status')).toBe(false);
    expect(agentsAsked).toEqual(['fulfillment_agent']);
    expect(provider.requests[0]!.messages[0]!.content).toContain('Order status: unknown');
    expect(result.context.get('final_notification')).toBe(
      `${SCRIPTED_LABEL} Order ORD-12345 is not fulfilled yet (status: unknown); our team will follow up. As a premium customer you have priority support.`,
    );
    expect(result.stepsCompleted).toBe(4);
  });

  it('partial fulfillment: the shipping label fails, 3 of 4 branches succeed (minimum 3), so the run completes', async () => {
    const { result } = await run({ shipping_address: { street: '1 Aloha Way', city: 'Honolulu', state: 'HI', zip: '96801' } });

    expect(result.status).toBe('completed');
    const fulfillment = stepAt(result, 'fulfillment_check/order_fulfillment');
    expect(fulfillment).toMatchObject({ status: 'completed' });
    expect(fulfillment.metadata).toMatchObject({ completed: 3, failed: 1 });
    const label = stepAt(result, 'fulfillment_check/order_fulfillment/create_shipping_label');
    expect(label).toMatchObject({ status: 'failed', attempts: 1 });
    expect(label.error).toMatchObject({ code: 'TOOL_ERROR', retryable: false, message: 'no ground carrier serves HI; this order needs air freight' });
    expect(Object.keys(fulfillment.output as object)).toEqual(['update_inventory', 'send_confirmation_email', 'update_crm']);
    expect(result.context.has('fulfillment_status')).toBe(false);
    expect(result.context.get('final_notification')).toContain('not fulfilled yet (status: unknown)');
    expect(result.stepsCompleted).toBe(5);
  });

  /** A stand-in payment gateway (inline, replacing the pool tool for one run) that fails its first `failures` calls. */
  function gatewayFailing(failures: number, message: string) {
    const attempts: number[] = [];
    const tool = new Tool({
      name: 'process_payment',
      parameters: { type: 'object', properties: { amount: { type: 'number' }, payment_method: { type: 'string' } }, required: ['amount', 'payment_method'] },
      execute: (_args: unknown, ctx: { attempt: number }) => {
        attempts.push(ctx.attempt);
        if (attempts.length <= failures) throw new Error(message);
        return { payment_successful: true, payment_status: 'captured', transaction_id: 'TXN-GATEWAY-STUB' };
      },
    });
    return { tool, attempts };
  }

  it('workflow error handler: a network error is retried (action retry) and the run completes', async () => {
    const gateway = gatewayFailing(2, 'Network error: payment gateway unreachable (ECONNRESET)');
    const { result, events } = await run({}, { tools: [gateway.tool] });

    expect(result.status).toBe('completed');
    expect(result.stepsCompleted).toBe(5);
    // Two attempts under the step's own retry policy failed; the handler's retry ran a third, which succeeded.
    expect(gateway.attempts).toEqual([1, 2, 3]);
    const payment = stepAt(result, 'payment_processing');
    expect(payment.attempts).toBe(2);
    expect(payment.metadata.errorHandling).toEqual({ action: 'retry', escalate: true, notify_team: true, handlerRetries: 1 });
    expect(stepAt(result, 'payment_processing/process_payment')).toMatchObject({ status: 'completed', attempts: 3 });
    const retries = events.filter((e): e is Extract<RunEvent, { type: 'step_retrying' }> => e.type === 'step_retrying');
    expect(retries.map((e) => [e.path, e.reason])).toEqual([
      ['payment_processing/process_payment', 'retry_policy'],
      ['payment_processing', 'error_handler'],
    ]);
    expect(result.context.get('transaction_id')).toBe('TXN-GATEWAY-STUB');
    expect(result.context.get('fulfillment_status')).toBe('ready_to_ship');
  });

  it('workflow error handler: a network outage that persists fails after the handler retries run out', async () => {
    const gateway = gatewayFailing(Number.POSITIVE_INFINITY, 'network timeout talking to the payment gateway');
    const { result } = await run({}, { tools: [gateway.tool] });

    expect(result.status).toBe('failed');
    // 2 attempts per execution of the step: the first execution and 3 handler retries.
    expect(gateway.attempts).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(stepAt(result, 'payment_processing').metadata.errorHandling).toMatchObject({ action: 'retry', handlerRetries: 3 });
    expect(result.error).toMatchObject({ code: 'TOOL_ERROR', message: 'network timeout talking to the payment gateway', stepPath: 'payment_processing' });
    expect(ids(result.steps)).toEqual(TOP_LEVEL.slice(0, 3));
  });

  it('workflow error handler: any other error fails the run (action fail) without further retries', async () => {
    const gateway = gatewayFailing(Number.POSITIVE_INFINITY, 'Card issuer declined the charge (do not honor)');
    const { result, agentsAsked } = await run({}, { tools: [gateway.tool] });

    expect(result.status).toBe('failed');
    expect(gateway.attempts).toEqual([1, 2]);
    expect(stepAt(result, 'payment_processing')).toMatchObject({ status: 'failed', attempts: 1 });
    expect(stepAt(result, 'payment_processing').metadata.errorHandling).toEqual({ action: 'fail', escalate: true, notify_team: true, handlerRetries: 0 });
    expect(result.error).toMatchObject({ code: 'TOOL_ERROR', message: 'Card issuer declined the charge (do not honor)', stepPath: 'payment_processing' });
    expect(ids(result.steps)).toEqual(TOP_LEVEL.slice(0, 3));
    expect(result.stepsCompleted).toBe(2);
    expect(result.totalSteps).toBe(5);
    expect(agentsAsked).toEqual([]);
  });

  it('main() prints what the seed prints, then each step', async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(' '));
    });
    let result: WorkflowResult;
    try {
      result = await main();
    } finally {
      spy.mockRestore();
    }
    expect(result.status).toBe('completed');
    expect(lines[0]).toBe('🚀 Starting order processing workflow...');
    expect(lines[1]).toContain('offline scripted model provider');
    expect(lines[1]).toContain('no model is called');
    expect(lines).toContain('✅ Workflow finished with status: completed');
    expect(lines.some((l) => /^⏱️ Total execution time: \d+(\.\d)?ms$/.test(l))).toBe(true);
    expect(lines).toContain('📊 Steps completed: 5/5');
    expect(lines).toContain(`🎉 Order ${sampleOrder.order_id} processed successfully!`);
    for (const path of [...TOP_LEVEL, ...BRANCHES]) expect(lines.some((l) => l.includes(`✓ ${path}: completed`))).toBe(true);
    expect(lines.at(-1)).toContain(`💬 fulfillment_agent: ${SCRIPTED_LABEL}`);
  });
});
