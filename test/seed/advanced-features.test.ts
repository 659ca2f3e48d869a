/**
 * Seed, "Advanced Features": Error Handling and Recovery (a per-step error handler returning a
 * replacement step; step-level retry and timeout), State Management (the final context and the step
 * outputs) and Streaming Execution (executeWorkflowStream, as an engine method and as the free function).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import {
  Agent,
  AgentStep,
  executeWorkflowStream,
  RecordingClock,
  ScriptedModelProvider,
  type StepLike,
  type StepResult,
  textReply,
  Tool,
  type ToolContext,
  ToolStep,
  Workflow,
  WorkflowBuilder,
  WorkflowContext,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';
import { ids, withEngine } from './support.ts';

describe('seed: Error Handling and Recovery', () => {
  type PaymentMode = 'ok' | 'hang' | 'decline';

  /** The seed's `payment_tool`: `mode` decides how a first-time charge behaves; `{ retry: true }` always captures. */
  function makePaymentTool(mode: PaymentMode) {
    const calls: { args: { amount?: number; retry?: boolean }; attempt: number; stepPath: string }[] = [];
    const paymentTool = new Tool({
      name: 'payment_tool',
      description: 'Charge the customer',
      parameters: { type: 'object', properties: { amount: { type: 'number' }, retry: { type: 'boolean' } } },
      execute: async (args: { amount?: number; retry?: boolean }, ctx: ToolContext) => {
        calls.push({ args, attempt: ctx.attempt, stepPath: ctx.stepPath });
        if (args.retry !== true && mode === 'hang') await sleep(60_000, undefined, { signal: ctx.signal });
        if (args.retry !== true && mode === 'decline') throw new Error('card declined by the issuer');
        return { payment_successful: true, payment_status: 'captured', charged_by: ctx.stepPath };
      },
    });
    return { paymentTool, calls };
  }

  const reviewAgent = new Agent({ name: 'review_agent', instructions: 'You review payments that could not be processed automatically.' });

  /** The seed's workflow; `timeoutSeconds` is 30 as in the seed unless a test needs the timeout to fire quickly. */
  function createPaymentWorkflow(paymentTool: Tool, timeoutSeconds = 30): Workflow {
    // Create workflow with error handling
    const workflow = new Workflow('payment_processing', 'Payment Processing');

    // Add error handler for specific step
    function paymentErrorHandler(stepResult: StepResult, _context: WorkflowContext): StepLike {
      if (stepResult.error?.code === 'TIMEOUT') {
        // Return a retry step
        return new ToolStep('retry_payment', paymentTool, { retry: true });
      }
      // Return a fallback step
      return new AgentStep('manual_review', reviewAgent, 'Manual payment review required');
    }
    workflow.addErrorHandler('process_payment', paymentErrorHandler);

    // Configure step-level retry
    const paymentStep = new ToolStep('process_payment', paymentTool, { amount: 100 });
    paymentStep.withRetry({ maxRetries: 3 }).withTimeout(timeoutSeconds);
    workflow.addStep(paymentStep);
    return workflow;
  }

  it('step-level retry: withRetry({ maxRetries: 3 }).withTimeout(30) means 4 attempts of 30 s', () => {
    const workflow = createPaymentWorkflow(makePaymentTool('ok').paymentTool);
    const def = workflow.steps[0]!.toDefinition();
    expect(def).toMatchObject({ id: 'process_payment', timeoutMs: 30_000 });
    expect(def.retry.maxAttempts).toBe(4);
    expect([...workflow.errorHandlers.keys()]).toEqual(['process_payment']);
  });

  it('no failure: the handler is not consulted', async () => {
    const { paymentTool, calls } = makePaymentTool('ok');
    const result = await withEngine({}, (engine) => engine.executeWorkflow(createPaymentWorkflow(paymentTool), new WorkflowContext({ workflowId: 'pay_ok' })));
    expect(result.status).toBe('completed');
    expect(ids(result.steps)).toEqual(['process_payment']);
    expect(calls).toEqual([{ args: { amount: 100 }, attempt: 1, stepPath: 'process_payment' }]);
  });

  it('a timeout: after the retries the handler returns retry_payment, which recovers the run (completed)', async () => {
    const { paymentTool, calls } = makePaymentTool('hang');
    const clock = new RecordingClock();
    const provider = new ScriptedModelProvider([]);
    // The seed's 30 s timeout, shortened so four timed-out attempts take 0.8 s.
    const workflow = createPaymentWorkflow(paymentTool, 0.2);
    const result = await withEngine({ clock, modelProvider: provider }, (engine) => engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'pay_timeout' })));

    expect(result.status).toBe('completed');
    expect(result.error).toBeUndefined();
    expect(result.steps.map((s) => [s.path, s.status])).toEqual([
      ['process_payment', 'failed'],
      ['process_payment:recover/retry_payment', 'completed'],
    ]);
    const [failed, replacement] = result.steps as [StepResult, StepResult];
    expect(failed.attempts).toBe(4);
    expect(failed.error?.code).toBe('TIMEOUT');
    expect(replacement.metadata.replaces).toBe('process_payment');
    expect(calls.map((c) => [c.stepPath, c.attempt, c.args])).toEqual([
      ['process_payment', 1, { amount: 100 }],
      ['process_payment', 2, { amount: 100 }],
      ['process_payment', 3, { amount: 100 }],
      ['process_payment', 4, { amount: 100 }],
      ['process_payment:recover/retry_payment', 1, { retry: true }],
    ]);
    expect(clock.sleeps).toHaveLength(3);
    expect(result.context.variables).toMatchObject({ payment_successful: true, charged_by: 'process_payment:recover/retry_payment' });
    expect(result.stepsCompleted).toBe(1);
    expect(result.totalSteps).toBe(1);
    expect(provider.requests).toHaveLength(0);
  });

  it('any other error: after the retries the handler returns the manual_review agent, which recovers the run', async () => {
    const { paymentTool, calls } = makePaymentTool('decline');
    const provider = new ScriptedModelProvider([textReply('Scripted reply: payment escalated to the billing team.')]);
    const result = await withEngine({ clock: new RecordingClock(), modelProvider: provider }, (engine) =>
      engine.executeWorkflow(createPaymentWorkflow(paymentTool), new WorkflowContext({ workflowId: 'pay_declined' })),
    );

    expect(result.status).toBe('completed');
    expect(result.steps.map((s) => [s.path, s.kind, s.status])).toEqual([
      ['process_payment', 'tool', 'failed'],
      ['process_payment:recover/manual_review', 'agent', 'completed'],
    ]);
    expect(result.steps[0]!.attempts).toBe(4);
    expect(result.steps[0]!.error).toMatchObject({ code: 'TOOL_ERROR', message: 'card declined by the issuer' });
    expect(result.steps[1]!.output).toBe('Scripted reply: payment escalated to the billing team.');
    expect(calls).toHaveLength(4);
    expect(provider.requests).toHaveLength(1);
    expect(provider.requests[0]!.messages[1]).toEqual({ role: 'user', content: 'Manual payment review required' });
    expect(result.stepsCompleted).toBe(1);
  });

  it('a handler that returns no step lets the failure stand (failed)', async () => {
    const { paymentTool } = makePaymentTool('decline');
    const workflow = new Workflow('payment_processing', 'Payment Processing')
      .addStep(new ToolStep('process_payment', paymentTool, { amount: 100 }))
      .addErrorHandler('process_payment', () => null);
    const result = await withEngine({}, (engine) => engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'pay_unhandled' })));
    expect(result.status).toBe('failed');
    expect(result.error).toMatchObject({ code: 'TOOL_ERROR', stepPath: 'process_payment' });
    expect(ids(result.steps)).toEqual(['process_payment']);
  });
});

describe('seed: State Management', () => {
  const verifyTool = new Tool({
    name: 'verify_identity',
    execute: (_args: unknown, ctx: ToolContext) => ({ verification_status: 'verified', verified_customer: (ctx.userContext as { customer_id: string }).customer_id }),
  });
  const benefitsTool = new Tool({
    name: 'assign_benefits',
    execute: (args: { tier: string }) => ({ benefits: args.tier === 'premium' ? ['priority_support', 'free_shipping'] : ['newsletter'] }),
  });

  it('the context is updated with every step output; result.context.variables and the step outputs show it', async () => {
    const workflow = new WorkflowBuilder('customer_onboarding', 'Customer Onboarding')
      .addToolStep('verify', verifyTool)
      .addStep(new ToolStep('benefits', benefitsTool).withParamsFunction((ctx) => ({ tier: ctx.get('customer_tier') })))
      .addStep(new ToolStep('audit', new Tool({ name: 'audit', execute: () => ['verified', 'benefits'] })).withOutputKey('audit_trail'))
      .build();

    // Create context with initial state
    const context = new WorkflowContext({
      workflowId: 'customer_onboarding',
      userContext: { customer_id: '12345' },
      variables: {
        customer_tier: 'premium',
        verification_status: 'pending',
      },
    });

    // Context is automatically updated with step results
    const result = await withEngine({}, (engine) => engine.executeWorkflow(workflow, context));

    // Access updated context after execution
    const finalContext = result.context;
    expect(result.status).toBe('completed');
    expect(finalContext.variables).toEqual({
      customer_tier: 'premium',
      verification_status: 'verified',
      verified_customer: '12345',
      benefits: ['priority_support', 'free_shipping'],
      audit_trail: ['verified', 'benefits'],
    });
    expect(result.steps.map((step) => step.output)).toEqual([
      { verification_status: 'verified', verified_customer: '12345' },
      { benefits: ['priority_support', 'free_shipping'] },
      ['verified', 'benefits'],
    ]);
    // The caller's context is never changed: each step derives a new one.
    expect(context.variables).toEqual({ customer_tier: 'premium', verification_status: 'pending' });
    expect(finalContext.userContext).toEqual({ customer_id: '12345' });
  });
});

describe('seed: Streaming Execution', () => {
  /**
   * Four steps: a lookup, a step that waits (at most 5 s) until the consumer has received the first
   * step's result, a skipped step, and a failing charge.
   */
  function createStreamingWorkflow(onFirstResultSeen: Promise<void>) {
    const lookup = new Tool({ name: 'lookup', execute: () => ({ customer_name: 'Ada' }) });
    const waitsForStream = new Tool({
      name: 'waits_for_stream',
      execute: async () => {
        const timer = new AbortController();
        const seen = await Promise.race([onFirstResultSeen.then(() => true), sleep(5000, false, { signal: timer.signal }).catch(() => false)]);
        timer.abort();
        return { first_result_streamed_before_this_step_ended: seen };
      },
    });
    const charge = new Tool({
      name: 'charge',
      execute: () => {
        throw Object.assign(new Error('card expired'), { retryable: false });
      },
    });
    return new WorkflowBuilder('streamed', 'Streamed workflow')
      .addToolStep('lookup', lookup)
      .addToolStep('wait_for_stream', waitsForStream)
      .addStep(new ToolStep('loyalty_bonus', lookup).addCondition((ctx) => ctx.get('customer_tier') === 'gold'))
      .addToolStep('charge', charge)
      .build();
  }

  /** The seed's loop body, collecting the printed lines. */
  function describeStep(stepResult: StepResult, printed: string[]): void {
    printed.push(`Step ${stepResult.stepId}: ${stepResult.status}`);
    if (stepResult.isSuccess) printed.push(`  Output: ${JSON.stringify(stepResult.output)}`);
    else if (stepResult.isFailure) printed.push(`  Error: ${stepResult.error?.message}`);
    printed.push(`  Execution time: ${stepResult.executionTimeMs}ms`);
  }

  function checkStreamed(streamed: StepResult[], printed: string[]) {
    expect(streamed.map((s) => [s.stepId, s.status])).toEqual([
      ['lookup', 'completed'],
      ['wait_for_stream', 'completed'],
      ['loyalty_bonus', 'skipped'],
      ['charge', 'failed'],
    ]);
    expect(streamed.map((s) => [s.isSuccess, s.isFailure])).toEqual([
      [true, false],
      [true, false],
      [false, false],
      [false, true],
    ]);
    // The first result reached the consumer while the run was still going.
    expect(streamed[1]!.output).toEqual({ first_result_streamed_before_this_step_ended: true });
    expect(printed.filter((l) => !l.startsWith('  Execution time:'))).toEqual([
      'Step lookup: completed',
      '  Output: {"customer_name":"Ada"}',
      'Step wait_for_stream: completed',
      '  Output: {"first_result_streamed_before_this_step_ended":true}',
      'Step loyalty_bonus: skipped',
      'Step charge: failed',
      '  Error: card expired',
    ]);
    expect(printed.filter((l) => l.startsWith('  Execution time:'))).toHaveLength(4);
  }

  it('the free function executeWorkflowStream yields each StepResult as it completes; they equal result.steps', async () => {
    let firstSeen!: () => void;
    const seen = new Promise<void>((resolve) => (firstSeen = resolve));
    const workflow = createStreamingWorkflow(seen);
    const context = new WorkflowContext({ workflowId: 'stream_1' });

    const streamed: StepResult[] = [];
    const printed: string[] = [];
    // Stream workflow execution
    const stream = executeWorkflowStream(workflow, context, { logger: quietLogger() });
    for await (const stepResult of stream) {
      streamed.push(stepResult);
      if (stepResult.stepId === 'lookup') firstSeen();
      describeStep(stepResult, printed);
    }
    const result = await stream.result;

    checkStreamed(streamed, printed);
    expect(result.status).toBe('failed');
    expect(result.error).toMatchObject({ code: 'TOOL_ERROR', message: 'card expired', stepPath: 'charge' });
    expect(streamed.map((s) => s.toJSON())).toEqual(result.steps.map((s) => s.toJSON()));
  });

  it('engine.executeWorkflowStream does the same on a long-lived engine', async () => {
    await withEngine({}, async (engine) => {
      let firstSeen!: () => void;
      const seen = new Promise<void>((resolve) => (firstSeen = resolve));
      const stream = engine.executeWorkflowStream(createStreamingWorkflow(seen), new WorkflowContext({ workflowId: 'stream_2' }));
      const streamed: StepResult[] = [];
      const printed: string[] = [];
      for await (const stepResult of stream) {
        streamed.push(stepResult);
        if (stepResult.stepId === 'lookup') firstSeen();
        describeStep(stepResult, printed);
      }
      const result = await stream.result;
      checkStreamed(streamed, printed);
      expect(streamed.map((s) => s.toJSON())).toEqual(result.steps.map((s) => s.toJSON()));

      // The engine stays usable: a second, successful run streams too.
      const ok = new WorkflowBuilder('ok').addToolStep('one', new Tool({ name: 'one', execute: () => ({ n: 1 }) })).build();
      const again: StepResult[] = [];
      const okStream = engine.executeWorkflowStream(ok, new WorkflowContext({ workflowId: 'stream_3' }));
      for await (const stepResult of okStream) again.push(stepResult);
      expect(again.map((s) => [s.stepId, s.isSuccess, s.output])).toEqual([['one', true, { n: 1 }]]);
      expect((await okStream.result).status).toBe('completed');
    });
  });
});
