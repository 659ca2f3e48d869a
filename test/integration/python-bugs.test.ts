/**
 * One test per bug of the Python reference (jaf-py-behaviour.md §3) that applies here, named after the
 * bug, showing it is absent from this engine. Each test exercises the behaviour the Python code gets
 * wrong and asserts the decided semantics (ARCHITECTURE.md).
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  Agent,
  AgentStep,
  ConditionalStep,
  ErrorCode,
  LoopStep,
  ParallelStep,
  ScriptedModelProvider,
  StepResult,
  textReply,
  Tool,
  ToolStep,
  Workflow,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowDefinitionError,
  WorkflowEngine,
  executeWorkflowStream,
  toolCallReply,
  type RunEvent,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';
import { aborted, eventCollector, findStep, Ledger, ofType, recordingClock } from './support.ts';

const engines: WorkflowEngine[] = [];
afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
});

function makeEngine(options: ConstructorParameters<typeof WorkflowEngine>[0] = {}): WorkflowEngine {
  const engine = new WorkflowEngine({ logger: quietLogger(), clock: recordingClock(), ...options });
  engines.push(engine);
  return engine;
}

const ctx = (variables: Record<string, unknown> = {}) => new WorkflowContext({ workflowId: 'order-1001', variables, userContext: { user: 'u1' } });

/** Returns its args. */
const echo = new Tool({ name: 'echo', execute: (args: unknown) => args });

function recordingTool(name: string, ledger: Ledger, output: unknown = { [`${name}_done`]: true }): Tool {
  return new Tool({ name, execute: () => (ledger.hit(name), output) });
}

function failingTool(name: string, ledger: Ledger, failures = Infinity, message = `${name} failed`): Tool {
  return new Tool({
    name,
    execute: () => {
      const call = ledger.hit(name);
      if (call <= failures) throw new Error(message);
      return { [`${name}_done`]: call };
    },
  });
}

describe('jaf-py §3 bugs are absent', () => {
  it('bug 1: error-handler recovery completes the run (it can never yield COMPLETED in jaf-py)', async () => {
    const engine = makeEngine();
    const ledger = new Ledger();
    let handlerSaw: StepResult | undefined;
    let shipSaw: unknown;
    const wf = new Workflow('checkout', 'Checkout')
      .addStep(new ToolStep('charge_card', failingTool('charge_card', ledger)))
      .addStep(new ToolStep('ship', echo).withParamsFunction((c) => ((shipSaw = c.get('paid_via')), { shipped: true })))
      .addErrorHandler('charge_card', (result) => {
        handlerSaw = result;
        return new ToolStep('invoice_instead', recordingTool('invoice_instead', ledger, { paid_via: 'invoice' }));
      });
    const result = await engine.executeWorkflow(wf, ctx());
    expect(result.status).toBe('completed');
    expect(result.isSuccess).toBe(true);
    expect(handlerSaw?.status).toBe('failed');
    expect(handlerSaw?.error?.code).toBe(ErrorCode.TOOL_ERROR);
    expect(result.steps.map((s) => [s.path, s.status])).toEqual([
      ['charge_card', 'failed'],
      ['charge_card:recover/invoice_instead', 'completed'],
      ['ship', 'completed'],
    ]);
    expect(result.steps[1]!.metadata.replaces).toBe('charge_card');
    expect(result.stepsCompleted).toBe(2);
    expect(result.totalSteps).toBe(2);
    // The steps after the recovered one ran and saw the recovery's output.
    expect(shipSaw).toBe('invoice');
    expect(result.error).toBeUndefined();
  });

  it("bug 1 (doc example): a handler checking for 'timeout' in the error recognises a timed-out step", async () => {
    const engine = makeEngine();
    const hang = new Tool({ name: 'hang', execute: () => new Promise(() => {}) });
    const wf = new Workflow('slow-payment')
      .addStep(new ToolStep('process_payment', hang).withTimeout(0.1))
      .addErrorHandler('process_payment', (result) =>
        result.error?.message.includes('timeout') === true ? new ToolStep('retry_payment_later', echo, { queued: true }) : null,
      );
    const result = await engine.executeWorkflow(wf, ctx());
    expect(result.steps[0]!.error?.code).toBe(ErrorCode.TIMEOUT);
    expect(result.status).toBe('completed');
    expect(result.context.get('queued')).toBe(true);
  });

  it('bug 2: skipped steps are not retried with backoff (jaf-py sleeps 1 + 2 + 4 s on a SKIPPED result)', async () => {
    // The engine's real clock: a retried skip would sleep for seconds.
    const engine = makeEngine({ clock: undefined });
    const ledger = new Ledger();
    const { events, onEvent } = eventCollector();
    const wf = new WorkflowBuilder('skips')
      .addStep(new ConditionalStep('no_false_branch', () => false, new ToolStep('then', recordingTool('then', ledger))).withRetry(3))
      .addStep(new ToolStep('gated', recordingTool('gated', ledger)).addCondition(() => false).withRetry(3))
      .addStep(new LoopStep('zero_iterations', new ToolStep('body', recordingTool('body', ledger)), () => false).withRetry(3))
      .build();
    const started = performance.now();
    const result = await engine.executeWorkflow(wf, ctx(), { onEvent });
    expect(performance.now() - started).toBeLessThan(900);
    expect(result.status).toBe('completed');
    expect(result.steps.map((s) => s.status)).toEqual(['skipped', 'skipped', 'completed']);
    expect(result.steps[2]!.output).toEqual([]);
    expect(ofType(events, 'step_retrying')).toEqual([]);
    expect(ledger.entries).toEqual([]);
    // Skipped steps do not count against the success rate (jaf-py reports 50.0 for one skip of two).
    expect(result.successRate).toBe(100);
  });

  it('bug 3: retrying a composite does not re-run its successful children, and nested retry/timeout/conditions are honoured', async () => {
    const engine = makeEngine();
    const ledger = new Ledger();
    const hang = new Tool({ name: 'hang', execute: () => new Promise(() => {}) });
    const par = new ParallelStep('fulfil')
      .addBranch(new ToolStep('reserve', recordingTool('reserve', ledger)))
      .addBranch(new ToolStep('notify', recordingTool('notify', ledger)))
      .addBranch(new ToolStep('label', failingTool('label', ledger, 1)))
      .withFailurePolicy('continue_on_partial_failure')
      .withMinimumSuccessCount(3)
      .withRetry(3);
    const loop = new LoopStep(
      'per_item',
      new ToolStep(
        'item',
        new Tool({
          name: 'item',
          execute: (args: { i: number }) => {
            if (ledger.hit(`item${args.i}`) === 1 && args.i === 1) throw new Error('flaky item');
            return { [`item${args.i}`]: 'ok' };
          },
        }),
      ).withParamsFunction((c) => ({ i: c.loop!.iteration })),
      (_c, i) => i < 3,
    ).withRetry(1);
    const nested = new ParallelStep('nested')
      .addBranch(new ToolStep('own_retry', failingTool('own_retry', ledger, 2)).withRetry(2))
      .addBranch(new ToolStep('own_timeout', hang).withTimeout(0.1))
      .addBranch(new ToolStep('own_condition', recordingTool('own_condition', ledger)).addCondition(() => false))
      .addBranch(new ConditionalStep('cond', () => true, new ToolStep('cond_inner', recordingTool('cond_inner', ledger)).addCondition(() => false)))
      .addBranch(new LoopStep('loop_gated', new ToolStep('loop_body', recordingTool('loop_body', ledger)).addCondition(() => false), (_c, i) => i < 2))
      .withFailurePolicy('continue_on_partial_failure')
      .withMinimumSuccessCount(1);
    const wf = new WorkflowBuilder('composites').addStep(par).addStep(loop).addStep(nested).build();
    const result = await engine.executeWorkflow(wf, ctx());
    expect(result.status).toBe('completed');
    // Parallel retry: only the failed branch ran again.
    expect([ledger.count('reserve'), ledger.count('notify'), ledger.count('label')]).toEqual([1, 1, 2]);
    // Loop retry: resumed at the failed iteration.
    expect([0, 1, 2].map((i) => ledger.count(`item${i}`))).toEqual([1, 2, 1]);
    // Nested settings.
    expect(findStep(result, 'nested/own_retry')).toMatchObject({ status: 'completed', attempts: 3 });
    expect(findStep(result, 'nested/own_timeout').error?.code).toBe(ErrorCode.TIMEOUT);
    expect(findStep(result, 'nested/own_condition').status).toBe('skipped');
    expect(findStep(result, 'nested/cond/cond_inner').status).toBe('skipped');
    expect(findStep(result, 'nested/loop_gated[0]/loop_body').status).toBe('skipped');
    expect(ledger.count('own_condition') + ledger.count('cond_inner') + ledger.count('loop_body')).toBe(0);
  });

  it('bug 4: waitForAll: false works, and the first *successful* branch wins (not the first to complete)', async () => {
    const engine = makeEngine();
    const fired = new Ledger();
    const slowOk = new Tool({ name: 'slow_ok', execute: async () => (await new Promise((r) => setTimeout(r, 30)), { source: 'slow_ok' }) });
    const fastFail = new Tool({ name: 'fast_fail', execute: () => Promise.reject(new Error('first to complete, but failed')) });
    const never = new Tool({ name: 'never', execute: async (_a, c) => (await aborted(c.signal), fired.hit('never'), Promise.reject(new Error('aborted'))) });
    const wf = new WorkflowBuilder('race').addParallelStep('race', [new ToolStep('fast_fail', fastFail), new ToolStep('slow_ok', slowOk), new ToolStep('never', never)], false).build();
    const result = await engine.executeWorkflow(wf, ctx());
    expect(result.status).toBe('completed');
    expect(result.context.get('source')).toBe('slow_ok');
    expect(findStep(result, 'race/never').status).toBe('cancelled');
    expect(fired.count('never')).toBe(1);
  });

  it('bug 5: backoff is consistent (exceptions, timeouts and model errors all back off with the same capped policy) and validation failures are not retried', async () => {
    const clock = recordingClock();
    const provider = new ScriptedModelProvider([], { whenExhausted: () => Promise.reject(new Error('model overloaded')) });
    const engine = makeEngine({ clock, modelProvider: provider });
    const hang = new Tool({ name: 'hang', execute: () => new Promise(() => {}) });
    const policy = { maxRetries: 3, initialDelaySeconds: 0.4, maxDelaySeconds: 1 };
    const ceilings = [400, 800, 1000];
    const steps = [
      new ToolStep('throws', failingTool('throws', new Ledger())).withRetry(policy),
      new ToolStep('times_out', hang).withTimeout(0.05).withRetry(policy),
      new AgentStep('agent', new Agent({ name: 'bot', instructions: 'help' }), 'hi').withRetry(policy),
    ];
    for (const step of steps) {
      clock.sleeps.length = 0;
      const { events, onEvent } = eventCollector();
      const result = await engine.executeWorkflow(new WorkflowBuilder(`b5-${step.id}`).addStep(step).build(), ctx(), { onEvent });
      expect(result.steps[0]!.attempts, step.id).toBe(4);
      expect(clock.sleeps, step.id).toHaveLength(3);
      clock.sleeps.forEach((d, i) => {
        expect(d, `${step.id} delay ${i + 1}`).toBeGreaterThanOrEqual(ceilings[i]! - 1);
        expect(d, `${step.id} delay ${i + 1}`).toBeLessThanOrEqual(ceilings[i]!);
      });
      expect(ofType(events, 'step_retrying').map((e) => e.delayMs)).toEqual(clock.sleeps);
    }
    clock.sleeps.length = 0;
    const ledger = new Ledger();
    const typed = new Tool({ name: 'typed', parameters: { type: 'object', properties: { qty: { type: 'integer' } }, required: ['qty'] }, execute: () => ledger.hit('typed') });
    const invalid = await engine.executeWorkflow(new WorkflowBuilder('b5-invalid').addStep(new ToolStep('typed', typed, { qty: 'two' }).withRetry(3)).build(), ctx());
    expect(invalid.steps[0]!.error?.code).toBe(ErrorCode.INVALID_TOOL_ARGS);
    expect(invalid.steps[0]!.attempts).toBe(1);
    expect(ledger.count('typed')).toBe(0);
    expect(clock.sleeps).toEqual([]);
  });

  it('bug 6: timeouts end steps even when the tool ignores cancellation, and a run can have a workflow-level deadline', async () => {
    const engine = makeEngine();
    const deaf = new Tool({ name: 'deaf', execute: () => new Promise((resolve) => setTimeout(() => resolve('late'), 10_000).unref()) });
    const started = performance.now();
    const single = await engine.executeWorkflow(new WorkflowBuilder('b6').addStep(new ToolStep('deaf', deaf).withTimeout(0.15).withRetry(2)).build(), ctx());
    const elapsed = performance.now() - started;
    expect(single.steps[0]!.error?.code).toBe(ErrorCode.TIMEOUT);
    expect(single.steps[0]!.attempts).toBe(3);
    expect(elapsed).toBeGreaterThanOrEqual(430);
    expect(elapsed).toBeLessThan(3_000);

    // A deadline for the whole run: every step is well within its own timeout, but the run is not.
    const slow = new Tool({ name: 'slow', execute: (_a, c) => new Promise((resolve) => setTimeout(resolve, 150, { tick: c.stepPath }).unref()) });
    const wf = new WorkflowBuilder('deadline');
    for (let i = 0; i < 10; i++) wf.addStep(new ToolStep(`s${i}`, slow));
    const runStarted = performance.now();
    const bounded = await engine.executeWorkflow(wf.build(), ctx(), { signal: AbortSignal.timeout(400) });
    const runElapsed = performance.now() - runStarted;
    expect(bounded.status).toBe('cancelled');
    expect(runElapsed).toBeGreaterThanOrEqual(390);
    expect(runElapsed).toBeLessThan(3_000);
    expect(bounded.steps.length).toBeLessThan(10);
  });

  it('bug 7: no shared mutable state between branches (each sees a frozen snapshot; branch outputs reach variables by name)', async () => {
    const engine = makeEngine();
    let mutationError: unknown;
    const bump = (id: string) =>
      new ToolStep(id, echo).withParamsFunction((c) => {
        try {
          (c.variables as Record<string, unknown>).shared = 'mutated in place';
        } catch (err) {
          mutationError = err;
        }
        return { shared: (c.get<number>('shared') ?? 0) + 1, [`${id}_saw`]: c.get('shared') };
      });
    const wf = new WorkflowBuilder('b7').addStep(new ParallelStep('par').addBranch(bump('left')).addBranch(bump('right'))).build();
    const result = await engine.executeWorkflow(wf, ctx({ shared: 0 }));
    expect(mutationError).toBeInstanceOf(TypeError);
    // jaf-py: both branches see each other's increment ({'shared': 2}). Here both saw 0.
    expect(result.context.variables).toMatchObject({ shared: 1, left_saw: 0, right_saw: 0 });
    // The parallel's output keys branch outputs by branch id, not a bare list of StepResults.
    expect(result.steps[0]!.output).toEqual({ left: { shared: 1, left_saw: 0 }, right: { shared: 1, right_saw: 0 } });
  });

  it('bug 8: context flows (outputs reach variables, failures write nothing, loop results survive the loop, recovery outputs are stored, inputs can use earlier outputs)', async () => {
    const engine = makeEngine();
    const ledger = new Ledger();
    const validate = new Tool({ name: 'validate', execute: () => ({ order_valid: true, total: 42 }) });
    const summary = new Tool({ name: 'summary', execute: () => 'all good' });
    const loop = new LoopStep('items', new ToolStep('item', echo).withParamsFunction((c) => ({ index: c.loop!.iteration, last_item: c.loop!.iteration })), (_c, i) => i < 3).withOutputKey('item_results');
    const wf = new Workflow('b8')
      .addStep(new ToolStep('validate', validate))
      .addStep(new ToolStep('summarise', summary).withOutputKey('summary'))
      .addStep(new ToolStep('charge', echo).addCondition((c) => c.get('order_valid') === true).withParamsFunction((c) => ({ charged: c.get<number>('total') * 2 })))
      .addStep(loop)
      .addStep(new ToolStep('flaky', failingTool('flaky', ledger)))
      .addErrorHandler('flaky', () => new ToolStep('fallback', echo, { recovered_by: 'fallback' }));
    const result = await engine.executeWorkflow(wf, ctx());
    expect(result.status).toBe('completed');
    const v = result.context.variables;
    expect(v).toMatchObject({ order_valid: true, total: 42, summary: 'all good', charged: 84, recovered_by: 'fallback', last_item: 2 });
    expect(v.item_results).toEqual([
      { index: 0, last_item: 0 },
      { index: 1, last_item: 1 },
      { index: 2, last_item: 2 },
    ]);
    // No `step_<id>_result` convention, and a failed step writes nothing (jaf-py writes None).
    expect(Object.keys(v).filter((k) => k.startsWith('step_'))).toEqual([]);
    expect(Object.keys(v)).not.toContain('flaky');
    // Duplicate step ids are rejected up front instead of silently overwriting each other.
    const dup = new WorkflowBuilder('dup').addStep(new ToolStep('same', echo, {})).addStep(new ToolStep('same', echo, {})).build();
    await expect(engine.executeWorkflow(dup, ctx())).rejects.toBeInstanceOf(WorkflowDefinitionError);
  });

  it('bug 9: AgentStep runs the agent through the model provider (instructions as system prompt, input as user message) and its tool calls run', async () => {
    const ledger = new Ledger();
    const lookup = new Tool({
      name: 'lookup_order',
      description: 'Looks an order up',
      parameters: { type: 'object', properties: { orderId: { type: 'string' } }, required: ['orderId'] },
      execute: (args: { orderId: string }) => (ledger.hit(`lookup:${args.orderId}`), { orderId: args.orderId, state: 'shipped' }),
    });
    const provider = new ScriptedModelProvider([toolCallReply([{ name: 'lookup_order', arguments: { orderId: 'A1' } }]), textReply('Order A1 has shipped.')]);
    const agent = new Agent({ name: 'support', instructions: 'You are a support agent. Be brief.', tools: [lookup] });
    const engine = makeEngine({ modelProvider: provider });
    const wf = new WorkflowBuilder('b9')
      .addStep(new AgentStep('answer', agent).withInputFunction((c) => `Where is order ${c.get<string>('order_id')}?`).withOutputKey('answer'))
      .build();
    const result = await engine.executeWorkflow(wf, ctx({ order_id: 'A1' }));
    expect(result.status).toBe('completed');
    expect(result.context.get('answer')).toBe('Order A1 has shipped.');
    expect(provider.requests).toHaveLength(2);
    const first = provider.requests[0]!;
    expect(first.messages[0]).toEqual({ role: 'system', content: 'You are a support agent. Be brief.' });
    expect(first.messages[1]).toEqual({ role: 'user', content: 'Where is order A1?' });
    expect(first.tools.map((t) => t.name)).toEqual(['lookup_order']);
    expect(ledger.count('lookup:A1')).toBe(1);
    const toolMessage = provider.requests[1]!.messages.find((m) => m.role === 'tool');
    expect(toolMessage).toMatchObject({ role: 'tool', toolCallId: 'call_1', name: 'lookup_order' });
    expect(JSON.parse((toolMessage as { content: string }).content)).toMatchObject({ result: { orderId: 'A1', state: 'shipped' } });
    expect(result.steps[0]!.metadata).toMatchObject({ usage: { turns: 2, toolCalls: 1 } });
    // Not jaf-py's canned "Agent X processed: ..." string.
    expect(String(result.steps[0]!.output)).not.toMatch(/processed:/);
  });

  it('bug 10: async conditions, predicates, loop conditions, params functions and handlers are awaited', async () => {
    const engine = makeEngine();
    const ledger = new Ledger();
    const later = <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), 1));
    const wf = new Workflow('b10')
      .addStep(new ToolStep('async_false', recordingTool('async_false', ledger)).addCondition(async () => later(false)))
      .addStep(new ToolStep('async_true', recordingTool('async_true', ledger)).addCondition(async () => later(true)))
      .addStep(new ConditionalStep('branch', async () => later(false), new ToolStep('yes', recordingTool('yes', ledger)), new ToolStep('no', recordingTool('no', ledger))))
      .addStep(new LoopStep('loop', new ToolStep('tick', recordingTool('tick', ledger)), async (_c, i) => later(i < 2)))
      .addStep(new ToolStep('params', echo).withParamsFunction(async (c) => later({ from_params: c.get('async_true_done') })))
      .addStep(new ToolStep('breaks', failingTool('breaks', ledger)))
      .addErrorHandler('breaks', async () => later(new ToolStep('replacement', echo, { replaced: true })));
    const result = await engine.executeWorkflow(wf, ctx());
    expect(result.status).toBe('completed');
    expect(ledger.count('async_false')).toBe(0);
    expect(ledger.count('async_true')).toBe(1);
    expect([ledger.count('yes'), ledger.count('no')]).toEqual([0, 1]);
    expect(ledger.count('tick')).toBe(2);
    expect(result.context.variables).toMatchObject({ from_params: true, replaced: true });

    // An async workflow-wide handler's decision is awaited too.
    const global = new WorkflowBuilder('b10-global')
      .addStep(new ToolStep('optional', failingTool('optional', ledger)))
      .addStep(new ToolStep('after', recordingTool('after', ledger)))
      .withErrorHandler(async () => later({ action: 'continue' as const }))
      .build();
    const continued = await engine.executeWorkflow(global, ctx());
    expect(continued.status).toBe('completed');
    expect(ledger.count('after')).toBe(1);
  });

  it('bug 11: runs have their own ids and can be cancelled (CANCELLED is produced), and retries are events', async () => {
    const engine = makeEngine();
    const wf = new WorkflowBuilder('b11').addStep(new ToolStep('flaky', failingTool('flaky', new Ledger(), 1)).withRetry(1)).build();
    const a = eventCollector();
    const b = eventCollector();
    const [r1, r2] = await Promise.all([engine.executeWorkflow(wf, ctx(), { onEvent: a.onEvent }), engine.executeWorkflow(wf, ctx(), { onEvent: b.onEvent })]);
    expect(r1.runId).not.toBe(r2.runId);
    expect(r1.runId).not.toBe(r1.workflowId);
    expect(r1.workflowId).toBe('b11');
    expect(r1.context.workflowId).toBe('order-1001');
    expect(a.events.every((e) => e.runId === r1.runId)).toBe(true);
    expect(b.events.every((e) => e.runId === r2.runId)).toBe(true);
    expect(ofType(a.events, 'step_retrying')).toHaveLength(1);
    const chosen = await engine.executeWorkflow(wf, ctx(), { runId: 'my-run-1' });
    expect(chosen.runId).toBe('my-run-1');

    const waits = new Tool({ name: 'waits', execute: async (_x, c) => (await aborted(c.signal), Promise.reject(new Error('stopped'))) });
    const controller = new AbortController();
    const pending = engine.executeWorkflow(new WorkflowBuilder('b11-cancel').addStep(new ToolStep('w', waits)).build(), ctx(), {
      signal: controller.signal,
      onEvent: (e: RunEvent) => {
        if (e.type === 'step_started') controller.abort();
      },
    });
    const cancelled = await pending;
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.steps[0]!.status).toBe('cancelled');
  });

  it('bug 13: streaming honours error handlers and gives the same results as execute', async () => {
    const ledger = new Ledger();
    const build = () =>
      new WorkflowBuilder('b13')
        .addStep(new ToolStep('validate', echo, { valid: true }))
        .addStep(new ToolStep('pay', failingTool('pay', ledger)))
        .addStep(new ToolStep('notify', failingTool('notify', ledger)))
        .addStep(new ToolStep('ship', echo).withParamsFunction((c) => ({ shipped_via: c.get('paid_with') })))
        .withErrorHandler('pay', () => new ToolStep('pay_by_invoice', echo, { paid_with: 'invoice' }))
        .withErrorHandler(() => ({ action: 'continue' }))
        .build();
    const engine = makeEngine();
    const executed = await engine.executeWorkflow(build(), ctx(), { runId: 'same' });

    const stream = engine.executeWorkflowStream(build(), ctx(), { runId: 'same' });
    const streamed: StepResult[] = [];
    for await (const step of stream) streamed.push(step);
    const streamedResult = await stream.result;

    const shape = (steps: readonly StepResult[]) => steps.map((s) => ({ path: s.path, status: s.status, output: s.output, error: s.error?.code }));
    expect(executed.status).toBe('completed');
    expect(shape(streamed)).toEqual(shape(executed.steps));
    expect(shape(streamedResult.steps)).toEqual(shape(executed.steps));
    expect(streamedResult.status).toBe(executed.status);
    expect(streamedResult.context.variables).toEqual(executed.context.variables);
    expect(streamedResult.context.get('shipped_via')).toBe('invoice');
    expect(shape(streamed).map((s) => s.path)).toEqual(['validate', 'pay', 'pay:recover/pay_by_invoice', 'notify', 'ship']);

    // The seed's free function streams the same way on a short-lived engine.
    const free = executeWorkflowStream(build(), ctx(), { logger: quietLogger(), clock: recordingClock() });
    const freeSteps: StepResult[] = [];
    for await (const step of free) freeSteps.push(step);
    expect(shape(freeSteps)).toEqual(shape(executed.steps));
    expect((await free.result).status).toBe('completed');
  });
});
