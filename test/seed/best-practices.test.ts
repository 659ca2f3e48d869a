/**
 * Seed, "Best Practices": 1. idempotent steps (withParamsFunction + upsert; create_if_not_exists),
 * 2. partial failures (robust_parallel with per-branch retries, continue_on_partial_failure and a
 * minimum success count, on pool tools), 3. timeouts per step type (data_processing), 4. a custom
 * DetailedWorkflowLogger.
 */
import { describe, expect, it } from 'vitest';
import {
  Agent,
  AgentStep,
  ConditionalStep,
  ParallelStep,
  RecordingClock,
  ScriptedModelProvider,
  type StepResult,
  textReply,
  Tool,
  type ToolContext,
  ToolStep,
  type Workflow,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowLogger,
} from 'jaf-workflows';
import { logSink } from '../helpers/logging.ts';
import { fixtureModule, ids, withEngine } from './support.ts';

describe('seed: Best Practices 1. Design for Idempotency', () => {
  interface UserRecord {
    user_id: string;
    email: string;
    writes: number;
  }

  /** The `create_user_account` tool over an in-memory user table; `upsert` creates or updates. */
  function makeUserStore(options: { loseFirstResponse?: boolean } = {}) {
    const users = new Map<string, UserRecord>();
    const calls: { args: unknown; attempt: number }[] = [];
    const tool = new Tool({
      name: 'create_user_account',
      description: 'Create (or, with upsert, update) a user account',
      parameters: {
        type: 'object',
        properties: { user_id: { type: 'string' }, email: { type: 'string' }, upsert: { type: 'boolean' } },
        required: ['user_id', 'email'],
      },
      execute: (args: { user_id: string; email: string; upsert?: boolean }, ctx: ToolContext) => {
        calls.push({ args, attempt: ctx.attempt });
        const existing = users.get(args.user_id);
        if (existing !== undefined && args.upsert !== true) throw Object.assign(new Error(`user ${args.user_id} already exists`), { retryable: false });
        users.set(args.user_id, { user_id: args.user_id, email: args.email, writes: (existing?.writes ?? 0) + 1 });
        // The write happened but the reply was lost: the caller cannot tell, so it retries.
        if (options.loseFirstResponse === true && ctx.attempt === 1) throw new Error('connection reset after the write');
        return { account_created: existing === undefined, account_user_id: args.user_id };
      },
    });
    const userExists = (userId: string): boolean => users.has(userId);
    return { tool, users, calls, userExists };
  }

  const context = () => new WorkflowContext({ workflowId: 'signup_1', variables: { user_id: 'u-42', email: 'ada@example.com' } });

  it('idempotent ToolStep (withParamsFunction + upsert): a retry after a lost reply, and a second run, leave one account', async () => {
    const store = makeUserStore({ loseFirstResponse: true });
    // Good: Idempotent step
    const idempotentStep = new ToolStep('create_user_account').withParamsFunction((ctx) => ({
      user_id: ctx.get('user_id'),
      email: ctx.get('email'),
      upsert: true, // Create or update
    }));
    const workflow = new WorkflowBuilder('signup').addStep(idempotentStep.withRetry(1)).build();

    await withEngine({ tools: [store.tool], clock: new RecordingClock() }, async (engine) => {
      const first = await engine.executeWorkflow(workflow, context());
      expect(first.status).toBe('completed');
      expect(first.steps[0]!.attempts).toBe(2);
      expect(store.calls).toEqual([
        { args: { user_id: 'u-42', email: 'ada@example.com', upsert: true }, attempt: 1 },
        { args: { user_id: 'u-42', email: 'ada@example.com', upsert: true }, attempt: 2 },
      ]);

      // A second run of the same signup (the reply is lost again) still converges on the same account.
      const second = await engine.executeWorkflow(workflow, context());
      expect(second.status).toBe('completed');
      expect(second.steps[0]!.attempts).toBe(2);
    });
    expect(store.calls).toHaveLength(4);
    expect([...store.users.values()]).toEqual([{ user_id: 'u-42', email: 'ada@example.com', writes: 4 }]);
  });

  it('ConditionalStep create_if_not_exists: creates the user once; on the next run the step is skipped', async () => {
    const store = makeUserStore();
    const { userExists } = store;
    // Good: Check before action
    const safeStep = new ConditionalStep('create_if_not_exists')
      .condition((ctx) => !userExists(ctx.get('user_id')))
      .ifTrue(new ToolStep('create_user_account').withParamsFunction((ctx) => ({ user_id: ctx.get('user_id'), email: ctx.get('email') })));
    const workflow = new WorkflowBuilder('signup').addStep(safeStep).build();

    await withEngine({ tools: [store.tool] }, async (engine) => {
      const first = await engine.executeWorkflow(workflow, context());
      expect(first.status).toBe('completed');
      expect(first.steps[0]).toMatchObject({ stepId: 'create_if_not_exists', status: 'completed' });
      expect(first.steps[0]!.metadata).toMatchObject({ branch: 'true', delegatedTo: 'create_user_account' });
      expect(first.steps[0]!.children.map((c) => c.path)).toEqual(['create_if_not_exists/create_user_account']);
      expect(first.context.get('account_created')).toBe(true);

      const second = await engine.executeWorkflow(workflow, context());
      expect(second.status).toBe('completed');
      expect(second.steps[0]).toMatchObject({ stepId: 'create_if_not_exists', status: 'skipped' });
      expect(second.steps[0]!.metadata.branch).toBe('false');
      expect(second.steps[0]!.children).toEqual([]);
    });
    // Without upsert a second create would have thrown: the condition kept it from running.
    expect(store.calls).toHaveLength(1);
    expect(store.users.get('u-42')?.writes).toBe(1);
  });
});

describe('seed: Best Practices 2. Handle Partial Failures', () => {
  // One pool module behind the three systems; it fails for the systems listed in userContext.down.
  const systemTools = ['update_crm', 'update_billing', 'update_analytics'].map(
    (name) => new Tool({ name, description: `Update ${name.slice('update_'.length)}`, module: fixtureModule('seed-system-update') }),
  );

  function createRobustParallel(): ParallelStep {
    // Parallel step with failure handling
    return new ParallelStep('multi_system_update')
      .addBranch(new ToolStep('update_crm').withRetry({ maxAttempts: 3 }))
      .addBranch(new ToolStep('update_billing').withRetry({ maxAttempts: 3 }))
      .addBranch(new ToolStep('update_analytics').withRetry({ maxAttempts: 2 }))
      .withFailurePolicy('continue_on_partial_failure')
      .withMinimumSuccessCount(2); // Require at least 2 successes
  }

  async function run(down: string[]) {
    const clock = new RecordingClock();
    const workflow = new WorkflowBuilder('multi_system').addStep(createRobustParallel()).build();
    const result = await withEngine({ tools: systemTools, clock }, (engine) =>
      engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'sync_1', userContext: { down } })),
    );
    const branch = (id: string) => result.steps[0]!.children.find((c) => c.stepId === id)!;
    return { result, clock, branch };
  }

  it('definition: per-branch retries (maxAttempts 3, 3, 2), continue_on_partial_failure, at least 2 successes', () => {
    const def = createRobustParallel().toDefinition();
    if (def.kind !== 'parallel') throw new Error('not a parallel step');
    expect(def).toMatchObject({ failurePolicy: 'continue_on_partial_failure', minimumSuccessCount: 2, waitForAll: true });
    expect(def.branches.map((b) => [b.id, b.retry.maxAttempts])).toEqual([
      ['update_crm', 3],
      ['update_billing', 3],
      ['update_analytics', 2],
    ]);
  });

  it('all systems up: every branch succeeds at once', async () => {
    const { result, clock } = await run([]);
    expect(result.status).toBe('completed');
    expect(result.steps[0]!.metadata).toMatchObject({ completed: 3, failed: 0 });
    expect(result.context.variables).toMatchObject({ crm_updated: true, billing_updated: true, analytics_updated: true, crm_attempt: 1 });
    expect(clock.sleeps).toEqual([]);
  });

  it('one branch failing after its retries: 2 of 3 succeed, so the step and the run complete', async () => {
    const { result, clock, branch } = await run(['analytics']);
    expect(result.status).toBe('completed');
    const step = result.steps[0]!;
    expect(step).toMatchObject({ stepId: 'multi_system_update', status: 'completed' });
    expect(step.metadata).toMatchObject({ completed: 2, failed: 1 });
    expect(branch('update_analytics')).toMatchObject({ path: 'multi_system_update/update_analytics', status: 'failed', attempts: 2 });
    expect(branch('update_analytics').error).toMatchObject({ code: 'TOOL_ERROR', message: 'analytics service unavailable (attempt 2)' });
    expect(branch('update_crm')).toMatchObject({ status: 'completed', attempts: 1 });
    expect(branch('update_billing')).toMatchObject({ status: 'completed', attempts: 1 });
    // Only the successful branches' outputs are joined.
    expect(step.output).toEqual({ update_crm: { crm_updated: true, crm_attempt: 1 }, update_billing: { billing_updated: true, billing_attempt: 1 } });
    expect(result.context.variables).toMatchObject({ crm_updated: true, billing_updated: true });
    expect(result.context.has('analytics_updated')).toBe(false);
    expect(clock.sleeps).toHaveLength(1);
  });

  it('two branches failing after their retries: 1 of 3 is below the minimum of 2, so the step and the run fail', async () => {
    const { result, clock, branch } = await run(['billing', 'analytics']);
    expect(result.status).toBe('failed');
    const step = result.steps[0]!;
    expect(step.status).toBe('failed');
    expect(step.metadata).toMatchObject({ completed: 1, failed: 2 });
    expect(step.error).toMatchObject({ code: 'PARALLEL_FAILED', message: '1 of 3 branches succeeded; at least 2 required' });
    expect(result.error).toMatchObject({ code: 'PARALLEL_FAILED', stepPath: 'multi_system_update' });
    expect(branch('update_billing')).toMatchObject({ status: 'failed', attempts: 3 });
    expect(branch('update_analytics')).toMatchObject({ status: 'failed', attempts: 2 });
    expect(branch('update_crm')).toMatchObject({ status: 'completed', attempts: 1 });
    expect(clock.sleeps).toHaveLength(3);
  });
});

describe('seed: Best Practices 3. Use Timeouts Appropriately', () => {
  const quickValidation = new Tool({
    name: 'quick_validation',
    parameters: { type: 'object' },
    execute: () => ({ validated: true }),
  });
  const heavyComputation = new Tool({
    name: 'heavy_computation',
    parameters: { type: 'object', properties: { limit: { type: 'integer' }, spin_forever: { type: 'boolean' } } },
    module: fixtureModule('seed-heavy-computation'),
  });
  const humanReview = new Agent({ name: 'human_review', instructions: 'You review the processed data before it is published.' });

  function createDataProcessingWorkflow(heavy: ToolStep = new ToolStep('heavy_computation')): Workflow {
    // Different timeouts for different step types
    return new WorkflowBuilder('data_processing')
      .addStep(
        new ToolStep('quick_validation').withTimeout(10), // Fast operation
      )
      .addStep(
        heavy.withTimeout(300), // Allow 5 minutes
      )
      .addStep(
        new AgentStep('human_review').withTimeout(3600), // Allow 1 hour
      )
      .build();
  }

  it('each step carries its own timeout in seconds', () => {
    const workflow = createDataProcessingWorkflow();
    expect(workflow.name).toBe('data_processing');
    expect(workflow.steps.map((s) => [s.id, s.toDefinition().timeoutMs])).toEqual([
      ['quick_validation', 10_000],
      ['heavy_computation', 300_000],
      ['human_review', 3_600_000],
    ]);
  });

  it('runs validation inline, the heavy computation on the pool and the review agent, resolved by name', async () => {
    const provider = new ScriptedModelProvider([textReply('Scripted reply: the data looks right.')]);
    const result = await withEngine({ tools: [quickValidation, heavyComputation], agents: [humanReview], modelProvider: provider }, async (engine) => {
      const run = await engine.executeWorkflow(createDataProcessingWorkflow(), new WorkflowContext({ workflowId: 'batch_7' }));
      expect(engine.poolStats()?.completed).toBe(1);
      return run;
    });
    expect(result.status).toBe('completed');
    expect(result.steps.map((s) => [s.stepId, s.kind, s.status])).toEqual([
      ['quick_validation', 'tool', 'completed'],
      ['heavy_computation', 'tool', 'completed'],
      ['human_review', 'agent', 'completed'],
    ]);
    expect(result.context.variables).toMatchObject({ validated: true, primes_below: 200_000, prime_count: 17_984 });
    // With no input, the agent receives the variables as its message.
    const message = provider.requests[0]!.messages[1]!;
    expect(message.role).toBe('user');
    expect(JSON.parse(message.content as string)).toMatchObject({ validated: true, prime_count: 17_984 });
  });

  it('a pool tool that overruns its timeout is stopped: TIMEOUT, later steps do not run, the pool keeps working', async () => {
    const provider = new ScriptedModelProvider([], { whenExhausted: () => textReply('Scripted reply: reviewed.') });
    await withEngine({ tools: [quickValidation, heavyComputation], agents: [humanReview], modelProvider: provider }, async (engine) => {
      // The seed's 300 s, shortened to 0.5 s; the computation never ends.
      const stuck = createDataProcessingWorkflow(new ToolStep('heavy_computation').withArgs({ spin_forever: true }));
      (stuck.steps[1] as ToolStep).withTimeout(0.5);
      const started = performance.now();
      const result = await engine.executeWorkflow(stuck, new WorkflowContext({ workflowId: 'batch_8' }));
      const elapsed = performance.now() - started;

      expect(result.status).toBe('failed');
      expect(result.steps.map((s) => [s.stepId, s.status])).toEqual([
        ['quick_validation', 'completed'],
        ['heavy_computation', 'failed'],
      ]);
      expect(result.error).toMatchObject({ code: 'TIMEOUT', stepPath: 'heavy_computation' });
      expect(elapsed).toBeLessThan(5000);
      expect(provider.requests).toHaveLength(0);

      const again = await engine.executeWorkflow(createDataProcessingWorkflow(new ToolStep('heavy_computation').withArgs({ limit: 1000 })), new WorkflowContext({ workflowId: 'batch_9' }));
      expect(again.status).toBe('completed');
      expect(again.context.get('prime_count')).toBe(168);
    });
  });
});

describe('seed: Best Practices 4. Implement Proper Logging', () => {
  // Custom logger
  class DetailedWorkflowLogger extends WorkflowLogger {
    override logStepStart(stepName: string, state: WorkflowContext): void {
      this.log.info(
        {
          workflow_id: state.workflowId,
          step_name: stepName,
          state_keys: Object.keys(state.variables),
        },
        `Starting step: ${stepName}`,
      );
    }

    override logStepComplete(stepName: string, result: StepResult, durationMs: number): void {
      this.log.info(
        {
          step_name: stepName,
          duration_ms: durationMs,
          success: result.isSuccess,
        },
        `Completed step: ${stepName} in ${durationMs}ms`,
      );
    }
  }

  it('the overrides log step starts and completions; the inherited methods still log the run and retries', async () => {
    const sink = logSink('info');
    // logSink() gives a WorkflowLogger; its pino logger (protected `log`) is what the subclass writes to.
    const detailed = new DetailedWorkflowLogger({ logger: sink.pino });

    let flakyCalls = 0;
    const load = new Tool({ name: 'load', execute: () => ({ rows: 3 }) });
    const flaky = new Tool({
      name: 'flaky',
      execute: () => {
        flakyCalls += 1;
        if (flakyCalls === 1) throw new Error('temporary glitch');
        return { flaky_done: true };
      },
    });
    // Use custom logger
    const workflow = new WorkflowBuilder('logged_workflow')
      .withLogger(detailed)
      .addToolStep('load', load)
      .addStep(new ToolStep('flaky', flaky).withRetry(1))
      .build();
    expect(workflow.logger).toBe(detailed);

    // The engine's own logger is quiet: the workflow's logger takes precedence.
    const result = await withEngine({ clock: new RecordingClock() }, (engine) =>
      engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'logged_1', variables: { source: 'api' } }), { runId: 'run-logged' }),
    );
    expect(result.status).toBe('completed');

    const messages = sink.lines.map((l) => l.msg);
    expect(messages).toEqual([
      'workflow logged_workflow started',
      'Starting step: load',
      expect.stringMatching(/^Completed step: load in [\d.]+ms$/),
      'Starting step: flaky',
      'step flaky will retry after attempt 1',
      'Starting step: flaky',
      expect.stringMatching(/^Completed step: flaky in [\d.]+ms$/),
      'workflow logged_workflow completed',
    ]);

    const starts = sink.lines.filter((l) => String(l.msg).startsWith('Starting step:'));
    expect(starts.map((l) => [l.step_name, l.workflow_id, l.state_keys])).toEqual([
      ['load', 'logged_1', ['source']],
      ['flaky', 'logged_1', ['source', 'rows']],
      ['flaky', 'logged_1', ['source', 'rows']],
    ]);
    const completes = sink.lines.filter((l) => String(l.msg).startsWith('Completed step:'));
    expect(completes.map((l) => [l.step_name, l.success, typeof l.duration_ms])).toEqual([
      ['load', true, 'number'],
      ['flaky', true, 'number'],
    ]);

    // Inherited lines carry the run's ids through pino child loggers.
    const retry = sink.lines.find((l) => l.msg === 'step flaky will retry after attempt 1')!;
    expect(retry).toMatchObject({ runId: 'run-logged', workflowId: 'logged_workflow', stepPath: 'flaky', attempt: 1 });
    expect((retry.error as { message: string }).message).toBe('temporary glitch');
    const completed = sink.lines.at(-1)!;
    expect(completed).toMatchObject({ runId: 'run-logged', status: 'completed', stepsCompleted: 2, totalSteps: 2 });
    expect(ids(result.steps)).toEqual(['load', 'flaky']);
  });
});
