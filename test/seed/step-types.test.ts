/**
 * Seed, "Step Types": AgentStep, ToolStep, ConditionalStep, ParallelStep and LoopStep, each as the seed
 * writes it, run on a real engine (scripted model provider for agents; inline tools where the example
 * is about the step, pool tools for the parallel example).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import {
  Agent,
  AgentStep,
  ConditionalStep,
  LoopStep,
  ParallelStep,
  RecordingClock,
  ScriptedModelProvider,
  Tool,
  ToolStep,
  WorkflowBuilder,
  WorkflowContext,
  textReply,
  type AgentState,
  type ModelRequest,
  type ToolContext,
} from 'jaf-workflows';
import { fixtureModule, ids, withEngine } from './support.ts';

describe('seed: AgentStep', () => {
  // Create an agent
  function instructions(_state: AgentState): string {
    return 'You are a helpful customer service agent.';
  }

  const customerAgent = new Agent({
    name: 'CustomerServiceAgent',
    instructions,
    tools: [],
  });

  function createAgentStep(): AgentStep {
    // Create agent step
    const agentStep = new AgentStep('customer_service', customerAgent, 'Handle customer inquiry about billing');
    // Configure step options
    agentStep.withTimeout(60).withRetry(3);
    // Add execution conditions
    agentStep.addCondition((context) => context.get('priority') === 'high');
    return agentStep;
  }

  const run = (step: AgentStep, provider: ScriptedModelProvider, priority: string, clock = new RecordingClock()) =>
    withEngine({ modelProvider: provider, clock }, (engine) =>
      engine.executeWorkflow(new WorkflowBuilder('support').addStep(step).build(), new WorkflowContext({ workflowId: 'ticket_1', variables: { priority } })),
    );

  it('withTimeout(60).withRetry(3): 60 s per attempt, 3 retries after the first attempt', () => {
    const def = createAgentStep().toDefinition();
    expect(def.kind).toBe('agent');
    expect(def.timeoutMs).toBe(60_000);
    expect(def.retry.maxAttempts).toBe(4);
    expect(def.conditions).toHaveLength(1);
  });

  it('priority high: the condition holds and the agent runs', async () => {
    const provider = new ScriptedModelProvider([textReply('Scripted reply: your billing question is answered.')]);
    const result = await run(createAgentStep(), provider, 'high');

    expect(result.status).toBe('completed');
    expect(result.steps[0]).toMatchObject({ stepId: 'customer_service', status: 'completed', attempts: 1 });
    expect(result.steps[0]!.output).toBe('Scripted reply: your billing question is answered.');
    expect(provider.requests).toHaveLength(1);
    expect(provider.requests[0]!.agent).toBe(customerAgent);
    expect(provider.requests[0]!.tools).toEqual([]);
    expect(provider.requests[0]!.messages).toEqual([
      { role: 'system', content: 'You are a helpful customer service agent.' },
      { role: 'user', content: 'Handle customer inquiry about billing' },
    ]);
  });

  it('priority low: the condition fails and the step is skipped (no model call, no retry)', async () => {
    const provider = new ScriptedModelProvider([]);
    const clock = new RecordingClock();
    const result = await run(createAgentStep(), provider, 'low', clock);

    expect(result.status).toBe('completed');
    expect(result.steps[0]).toMatchObject({ stepId: 'customer_service', status: 'skipped', attempts: 0 });
    expect(result.steps[0]!.isSkipped).toBe(true);
    expect(result.steps[0]!.metadata.reason).toBe('conditions not met');
    expect(provider.requests).toHaveLength(0);
    expect(clock.sleeps).toEqual([]);
    expect(result.successRate).toBe(0);
  });

  it('withRetry(3): model errors are retried up to 3 times with backoff', async () => {
    const outage = () => {
      throw new Error('model endpoint returned 503');
    };
    const recovering = new ScriptedModelProvider([outage, outage, outage, textReply('Scripted reply: answered on the 4th try.')]);
    const clock = new RecordingClock();
    const recovered = await run(createAgentStep(), recovering, 'high', clock);
    expect(recovered.status).toBe('completed');
    expect(recovered.steps[0]!.attempts).toBe(4);
    expect(recovered.steps[0]!.output).toBe('Scripted reply: answered on the 4th try.');
    expect(clock.sleeps).toHaveLength(3);

    const down = new ScriptedModelProvider([], { whenExhausted: outage });
    const failed = await run(createAgentStep(), down, 'high');
    expect(failed.status).toBe('failed');
    expect(failed.steps[0]).toMatchObject({ status: 'failed', attempts: 4 });
    expect(failed.steps[0]!.error).toMatchObject({ code: 'MODEL_ERROR', message: 'model endpoint returned 503' });
    expect(down.requests).toHaveLength(4);
  });

  it('the step timeout aborts a model call that overruns, and the timeout is retried', async () => {
    const signals: AbortSignal[] = [];
    const hanging = new ScriptedModelProvider([], {
      whenExhausted: async (request: ModelRequest) => {
        signals.push(request.signal);
        await sleep(10_000, undefined, { signal: request.signal }).catch(() => {});
        return textReply('too late');
      },
    });
    // The seed's 60 s, shortened so the test does not wait for it.
    const result = await run(createAgentStep().withTimeout(0.2), hanging, 'high');
    expect(result.status).toBe('failed');
    expect(result.steps[0]).toMatchObject({ status: 'failed', attempts: 4 });
    expect(result.steps[0]!.error?.code).toBe('TIMEOUT');
    expect(signals).toHaveLength(4);
    expect(signals.every((s) => s.aborted)).toBe(true);
  });
});

describe('seed: ToolStep', () => {
  /** The seed's `send_email` tool; fails with a transient error on its first `failures` calls. */
  function makeEmailTool(failures = 0) {
    const calls: { args: unknown; attempt: number; idempotencyKey: string }[] = [];
    // Create a tool
    const emailTool = new Tool({
      name: 'send_email',
      description: 'Send email to customer',
      parameters: {
        type: 'object',
        properties: { to: { type: 'string' }, subject: { type: 'string' }, template: { type: 'string' } },
        required: ['to', 'subject', 'template'],
      },
      execute: (args: { to: string; subject: string; template: string }, ctx: ToolContext) => {
        calls.push({ args, attempt: ctx.attempt, idempotencyKey: ctx.idempotencyKey });
        if (calls.length <= failures) throw new Error(`SMTP relay busy (attempt ${ctx.attempt})`);
        return { email_sent: true, email_to: args.to, email_message_id: `msg-${ctx.idempotencyKey}` };
      },
    });
    return { emailTool, calls };
  }

  function createToolStep(emailTool: Tool): ToolStep {
    // Create tool step
    const toolStep = new ToolStep('send_welcome_email', emailTool, {
      to: 'customer@example.com',
      subject: 'Welcome to our service',
      template: 'welcome_email',
    });
    // Configure step options
    toolStep.withTimeout(30).withRetry(2);
    return toolStep;
  }

  const run = (step: ToolStep, clock = new RecordingClock()) =>
    withEngine({ clock }, (engine) =>
      engine.executeWorkflow(new WorkflowBuilder('welcome').addStep(step).build(), new WorkflowContext({ workflowId: 'welcome_1' }), { runId: 'run-welcome' }),
    );

  it('withTimeout(30).withRetry(2): 30 s per attempt, 3 attempts in all', () => {
    const def = createToolStep(makeEmailTool().emailTool).toDefinition();
    expect(def).toMatchObject({ kind: 'tool', id: 'send_welcome_email', timeoutMs: 30_000 });
    expect(def.retry.maxAttempts).toBe(3);
  });

  it('runs the tool with the static args and merges its output into the variables', async () => {
    const { emailTool, calls } = makeEmailTool();
    const result = await run(createToolStep(emailTool));

    expect(result.status).toBe('completed');
    expect(calls).toEqual([
      {
        args: { to: 'customer@example.com', subject: 'Welcome to our service', template: 'welcome_email' },
        attempt: 1,
        idempotencyKey: 'run-welcome:send_welcome_email',
      },
    ]);
    expect(result.steps[0]!.output).toEqual({ email_sent: true, email_to: 'customer@example.com', email_message_id: 'msg-run-welcome:send_welcome_email' });
    expect(result.context.get('email_sent')).toBe(true);
  });

  it('withRetry(2): two transient failures are retried and the third attempt succeeds; a third failure fails the step', async () => {
    const flaky = makeEmailTool(2);
    const clock = new RecordingClock();
    const recovered = await run(createToolStep(flaky.emailTool), clock);
    expect(recovered.status).toBe('completed');
    expect(recovered.steps[0]!.attempts).toBe(3);
    expect(flaky.calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
    // Every attempt sees the same idempotency key, so the tool can deduplicate the send.
    expect(new Set(flaky.calls.map((c) => c.idempotencyKey))).toEqual(new Set(['run-welcome:send_welcome_email']));
    expect(clock.sleeps).toHaveLength(2);

    const broken = makeEmailTool(3);
    const failed = await run(createToolStep(broken.emailTool));
    expect(failed.status).toBe('failed');
    expect(failed.steps[0]).toMatchObject({ status: 'failed', attempts: 3 });
    expect(failed.steps[0]!.error).toMatchObject({ code: 'TOOL_ERROR', message: 'SMTP relay busy (attempt 3)', retryable: true });
    expect(broken.calls).toHaveLength(3);
  });

  it('retries with a class-based Clock (its methods are called on the clock, not detached)', async () => {
    const flaky = makeEmailTool(1);
    const clock = new RecordingClock();
    const result = await run(createToolStep(flaky.emailTool), clock);
    expect(result.status).toBe('completed');
    expect(result.steps[0]!.attempts).toBe(2);
    expect(clock.sleeps).toHaveLength(1);
  });

  it('arguments are checked against the tool parameters before it runs; invalid args are not retried', async () => {
    const { emailTool, calls } = makeEmailTool();
    const step = new ToolStep('send_welcome_email', emailTool, { to: 'customer@example.com', template: 'welcome_email' }).withTimeout(30).withRetry(2);
    const result = await run(step);
    expect(result.status).toBe('failed');
    expect(result.steps[0]).toMatchObject({ status: 'failed', attempts: 1 });
    expect(result.steps[0]!.error?.code).toBe('INVALID_TOOL_ARGS');
    expect(result.steps[0]!.error?.message).toContain('subject');
    expect(calls).toHaveLength(0);
  });
});

describe('seed: ConditionalStep', () => {
  const highValueAgent = new Agent({ name: 'high_value_agent', instructions: 'You review high-value transactions for fraud and approve or reject them.' });

  function makeAutoApproveTool() {
    const calls: unknown[] = [];
    const autoApproveTool = new Tool({
      name: 'auto_approve',
      description: 'Approve a low-value transaction automatically',
      parameters: { type: 'object', properties: { auto_approve: { type: 'boolean' } }, required: ['auto_approve'] },
      execute: (args: { auto_approve: boolean }) => {
        calls.push(args);
        return { approved: args.auto_approve, approval_method: 'automatic' };
      },
    });
    return { autoApproveTool, calls };
  }

  function createConditionalStep(autoApproveTool: Tool): ConditionalStep {
    // Create conditional step
    return new ConditionalStep(
      'payment_check',
      (context) => context.get('payment_amount', 0) > 1000,
      new AgentStep('approval', highValueAgent, 'Review high-value transaction'),
      new ToolStep('auto_approve', autoApproveTool, { auto_approve: true }),
    );
  }

  async function run(variables: Record<string, unknown>) {
    const { autoApproveTool, calls } = makeAutoApproveTool();
    const provider = new ScriptedModelProvider([textReply('Scripted reply: approved after review.')]);
    const result = await withEngine({ modelProvider: provider }, (engine) =>
      engine.executeWorkflow(new WorkflowBuilder('payments').addStep(createConditionalStep(autoApproveTool)).build(), new WorkflowContext({ workflowId: 'pay_1', variables })),
    );
    return { result, calls, provider };
  }

  it('payment_amount > 1000: the true branch (the approval agent) runs and the tool does not', async () => {
    const { result, calls, provider } = await run({ payment_amount: 2500 });
    expect(result.status).toBe('completed');
    const step = result.steps[0]!;
    expect(step).toMatchObject({ stepId: 'payment_check', kind: 'conditional', status: 'completed' });
    expect(step.metadata).toMatchObject({ branch: 'true', delegatedTo: 'approval' });
    expect(step.children.map((c) => [c.path, c.kind, c.status])).toEqual([['payment_check/approval', 'agent', 'completed']]);
    expect(step.output).toBe('Scripted reply: approved after review.');
    expect(provider.requests).toHaveLength(1);
    expect(provider.requests[0]!.messages[1]).toEqual({ role: 'user', content: 'Review high-value transaction' });
    expect(calls).toHaveLength(0);
  });

  it('payment_amount <= 1000: the false branch (auto_approve) runs with its args and the agent does not', async () => {
    const { result, calls, provider } = await run({ payment_amount: 200 });
    expect(result.status).toBe('completed');
    const step = result.steps[0]!;
    expect(step.metadata).toMatchObject({ branch: 'false', delegatedTo: 'auto_approve' });
    expect(step.children.map((c) => [c.path, c.kind, c.status])).toEqual([['payment_check/auto_approve', 'tool', 'completed']]);
    expect(calls).toEqual([{ auto_approve: true }]);
    expect(result.context.variables).toMatchObject({ payment_amount: 200, approved: true, approval_method: 'automatic' });
    expect(provider.requests).toHaveLength(0);
  });

  it('no payment_amount: ctx.get falls back to 0, so the false branch runs', async () => {
    const { result, calls } = await run({});
    expect(result.steps[0]!.metadata.branch).toBe('false');
    expect(calls).toHaveLength(1);
  });
});

describe('seed: ParallelStep', () => {
  const databaseTool = new Tool({
    name: 'database_tool',
    description: 'Create a record in a table',
    parameters: { type: 'object', properties: { table: { type: 'string' }, work_ms: { type: 'number' } }, required: ['table'] },
    module: fixtureModule('seed-database'),
  });
  const emailTool = new Tool({
    name: 'email_tool',
    description: 'Queue an email from a template',
    parameters: { type: 'object', properties: { template: { type: 'string' }, work_ms: { type: 'number' } }, required: ['template'] },
    module: fixtureModule('seed-email'),
  });
  const managerAgent = new Agent({ name: 'manager_agent', instructions: 'You assign an account manager to new customers.' });

  function createParallelStep(): ParallelStep {
    // Create steps for parallel execution
    const createRecordStep = new ToolStep('create_record', databaseTool, { table: 'customers' });
    const sendEmailStep = new ToolStep('send_email', emailTool, { template: 'welcome' });
    const assignManagerStep = new AgentStep('assign_manager', managerAgent, 'Assign account manager');
    // Create parallel step
    const parallelStep = new ParallelStep(
      'customer_setup',
      [createRecordStep, sendEmailStep, assignManagerStep],
      true, // Wait for all steps to complete
    );
    // Configure timeout
    parallelStep.withTimeout(120);
    return parallelStep;
  }

  it('definition: three branches, waitForAll, fail_fast by default, 120 s timeout', () => {
    const def = createParallelStep().toDefinition();
    expect(def).toMatchObject({ kind: 'parallel', waitForAll: true, failurePolicy: 'fail_fast', timeoutMs: 120_000 });
    if (def.kind !== 'parallel') throw new Error('not a parallel step');
    expect(ids(def.branches)).toEqual(['create_record', 'send_email', 'assign_manager']);
  });

  it('runs the two pool tools at the same time on different threads, with the agent, and joins every output', async () => {
    const provider = new ScriptedModelProvider([], { whenExhausted: () => textReply('Scripted reply: Dana Reyes will be your account manager.') });
    const workflow = new WorkflowBuilder('customer_onboarding', 'Customer Onboarding').addStep(createParallelStep()).build();
    await withEngine({ modelProvider: provider }, async (engine) => {
      // A first run starts both pool threads, so the measured run below does not wait for thread start-up.
      const warm = await engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'setup_0' }));
      expect(warm.status).toBe('completed');

      const result = await engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'setup_1', variables: { customer_id: 'cust_9' } }));
      expect(result.status).toBe('completed');
      const step = result.steps[0]!;
      expect(step).toMatchObject({ stepId: 'customer_setup', kind: 'parallel', status: 'completed' });
      expect(step.metadata).toMatchObject({ completed: 3, failed: 0, skipped: 0, cancelled: 0 });
      expect(step.children.map((c) => c.path).sort()).toEqual(['customer_setup/assign_manager', 'customer_setup/create_record', 'customer_setup/send_email']);
      expect(step.children.every((c) => c.status === 'completed')).toBe(true);

      const output = step.output as Record<string, Record<string, unknown> | string>;
      expect(Object.keys(output)).toEqual(['create_record', 'send_email', 'assign_manager']);
      expect(output.assign_manager).toBe('Scripted reply: Dana Reyes will be your account manager.');
      const vars = result.context.variables;
      expect(vars).toMatchObject({ customer_id: 'cust_9', record_table: 'customers', email_template: 'welcome', email_queued: true });
      expect(vars.record_id).toMatch(/^customers-[0-9a-f]{8}$/);

      // Both tools held a pool thread for 300 ms: they overlapped in time, on two different threads.
      const db = vars as { db_thread: number; db_started_at: number; db_finished_at: number };
      const mail = vars as { email_thread: number; email_started_at: number; email_finished_at: number };
      expect(db.db_thread).not.toBe(mail.email_thread);
      expect(db.db_started_at).toBeLessThan(mail.email_finished_at);
      expect(mail.email_started_at).toBeLessThan(db.db_finished_at);
      expect(provider.requests.map((r) => r.messages[1]?.content)).toEqual(['Assign account manager', 'Assign account manager']);
    });
  });
});

describe('seed: LoopStep', () => {
  const orders = (n: number) => Array.from({ length: n }, (_, i) => ({ order_id: `ORD-${100 + i}`, amount: 10 * (i + 1) }));

  /** The seed's `processing_tool`; records the step path of every call. */
  function makeProcessingTool() {
    const calls: { args: unknown; stepPath: string }[] = [];
    const processingTool = new Tool({
      name: 'processing_tool',
      description: 'Process one order',
      execute: (args: { order?: { order_id: string; amount: number }; iteration?: number }, ctx: ToolContext) => {
        calls.push({ args, stepPath: ctx.stepPath });
        if (args.order === undefined) return { processed: true };
        return { processed_order_id: args.order.order_id, amount_with_tax: Math.round(args.order.amount * 108) / 100, iteration: args.iteration };
      },
    });
    return { processingTool, calls };
  }

  function createLoopStep(processStep: ToolStep): LoopStep {
    // Create loop step with condition
    const loopStep = new LoopStep('process_orders', processStep, (context, iteration) => iteration < context.get<unknown[]>('orders', []).length, 10);
    // Configure timeout
    loopStep.withTimeout(300);
    return loopStep;
  }

  const run = (loop: LoopStep, n: number) =>
    withEngine({}, (engine) => engine.executeWorkflow(new WorkflowBuilder('orders').addStep(loop).build(), new WorkflowContext({ workflowId: 'batch_1', variables: { orders: orders(n) } })));

  it('as in the seed (static {} args): the body runs once per order, each iteration at its own path', async () => {
    const { processingTool, calls } = makeProcessingTool();
    // Create step to execute in loop
    const processStep = new ToolStep('process_item', processingTool, {});
    const loop = createLoopStep(processStep);
    expect(loop.toDefinition()).toMatchObject({ kind: 'loop', maxIterations: 10, timeoutMs: 300_000 });

    const result = await run(loop, 3);
    expect(result.status).toBe('completed');
    expect(calls.map((c) => c.stepPath)).toEqual(['process_orders[0]/process_item', 'process_orders[1]/process_item', 'process_orders[2]/process_item']);
    expect(calls.every((c) => JSON.stringify(c.args) === '{}')).toBe(true);
    const step = result.steps[0]!;
    expect(step.output).toEqual([{ processed: true }, { processed: true }, { processed: true }]);
    expect(step.metadata).toMatchObject({ iterations: 3, stoppedBy: 'condition' });
    expect(step.children.map((c) => c.path)).toEqual(calls.map((c) => c.stepPath));
  });

  it('the body sees ctx.loop.iteration and processes the matching order; outputs are kept as a list', async () => {
    const { processingTool } = makeProcessingTool();
    const processStep = new ToolStep('process_item', processingTool).withParamsFunction((ctx) => {
      const iteration = ctx.loop!.iteration;
      return { order: ctx.get<ReturnType<typeof orders>>('orders')[iteration], iteration };
    });
    const result = await run(createLoopStep(processStep).withOutputKey('processed_orders'), 3);

    expect(result.status).toBe('completed');
    const expected = [
      { processed_order_id: 'ORD-100', amount_with_tax: 10.8, iteration: 0 },
      { processed_order_id: 'ORD-101', amount_with_tax: 21.6, iteration: 1 },
      { processed_order_id: 'ORD-102', amount_with_tax: 32.4, iteration: 2 },
    ];
    expect(result.steps[0]!.output).toEqual(expected);
    expect(result.context.get('processed_orders')).toEqual(expected);
    // Outside the loop there is no loop position.
    expect(result.context.loop).toBeUndefined();
  });

  it('maxIterations (10) caps the loop even when the condition still holds', async () => {
    const { processingTool, calls } = makeProcessingTool();
    const result = await run(createLoopStep(new ToolStep('process_item', processingTool, {})), 15);
    expect(result.status).toBe('completed');
    expect(calls).toHaveLength(10);
    expect(calls.at(-1)!.stepPath).toBe('process_orders[9]/process_item');
    expect(result.steps[0]!.output).toHaveLength(10);
    expect(result.steps[0]!.metadata).toMatchObject({ iterations: 10, stoppedBy: 'max_iterations' });
  });

  it('no orders: the condition is false at once, the body never runs and the output is an empty list', async () => {
    const { processingTool, calls } = makeProcessingTool();
    const result = await run(createLoopStep(new ToolStep('process_item', processingTool, {})), 0);
    expect(result.status).toBe('completed');
    expect(calls).toHaveLength(0);
    expect(result.steps[0]).toMatchObject({ status: 'completed', output: [] });
    expect(result.steps[0]!.metadata).toMatchObject({ iterations: 0, stoppedBy: 'condition' });
  });
});
