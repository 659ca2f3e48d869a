/**
 * Retry semantics (ARCHITECTURE.md "Semantics"): withRetry(n) is n retries, { maxAttempts } is attempts
 * in all; exponential backoff with full jitter and a cap; non-retryable errors stop at once; skipped
 * steps are never retried; timeouts end the step and are retried; retrying a composite resumes it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConditionalStep,
  ErrorCode,
  LoopStep,
  NonRetryableError,
  ParallelStep,
  RecordingClock,
  Tool,
  ToolStep,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowEngine,
  type RunEvent,
  type StepLike,
  type WorkflowResult,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';
import { deferred, eventCollector, findStep, Ledger, ofType, recordingClock } from './support.ts';

const engines: WorkflowEngine[] = [];
afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
});

function setup(jitter?: number): { engine: WorkflowEngine; clock: RecordingClock } {
  const clock = recordingClock(jitter);
  const engine = new WorkflowEngine({ logger: quietLogger(), clock });
  engines.push(engine);
  return { engine, clock };
}

async function runOne(engine: WorkflowEngine, step: StepLike, events?: RunEvent[]): Promise<WorkflowResult> {
  const wf = new WorkflowBuilder(`wf-${step.id}`).addStep(step).build();
  return engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'retries' }), events === undefined ? {} : { onEvent: (e) => events.push(e) });
}

/** An inline tool that fails its first `failures` calls (per ledger key), then returns `{ [key]: call }`. */
function flakyTool(ledger: Ledger, key: string, failures: number, error: () => unknown = () => new Error(`${key} failed`)): Tool {
  return new Tool({
    name: `flaky_${key}`,
    execute: () => {
      const call = ledger.hit(key);
      if (call <= failures) throw error();
      return { [key]: call };
    },
  });
}

describe('how many attempts', () => {
  it('withRetry(n) means n retries: n + 1 attempts', async () => {
    const { engine } = setup();
    for (const n of [0, 1, 3]) {
      const ledger = new Ledger();
      const result = await runOne(engine, new ToolStep('always_fails', flakyTool(ledger, 'k', Infinity)).withRetry(n));
      expect(result.status).toBe('failed');
      expect(result.steps[0]!.attempts, `withRetry(${n})`).toBe(n + 1);
      expect(ledger.count('k'), `withRetry(${n})`).toBe(n + 1);
    }
  });

  it('{ maxRetries: n } is the same as withRetry(n); { maxAttempts: n } means n attempts in all', async () => {
    const { engine } = setup();
    const a = new Ledger();
    const byRetries = await runOne(engine, new ToolStep('by_retries', flakyTool(a, 'k', Infinity)).withRetry({ maxRetries: 2 }));
    expect(byRetries.steps[0]!.attempts).toBe(3);
    expect(a.count('k')).toBe(3);
    const b = new Ledger();
    const byAttempts = await runOne(engine, new ToolStep('by_attempts', flakyTool(b, 'k', Infinity)).withRetry({ maxAttempts: 3 }));
    expect(byAttempts.steps[0]!.attempts).toBe(3);
    expect(b.count('k')).toBe(3);
    const c = new Ledger();
    const once = await runOne(engine, new ToolStep('one_attempt', flakyTool(c, 'k', Infinity)).withRetry({ maxAttempts: 1 }));
    expect(once.steps[0]!.attempts).toBe(1);
    expect(c.count('k')).toBe(1);
  });

  it('a step that succeeds on a retry completes, with its attempt count and the successful output', async () => {
    const { engine } = setup();
    const ledger = new Ledger();
    const events: RunEvent[] = [];
    const result = await runOne(engine, new ToolStep('eventually', flakyTool(ledger, 'k', 2)).withRetry(5), events);
    expect(result.status).toBe('completed');
    expect(result.steps[0]!.attempts).toBe(3);
    expect(result.steps[0]!.output).toEqual({ k: 3 });
    expect(result.context.get('k')).toBe(3);
    expect(ofType(events, 'step_started').map((e) => e.attempt)).toEqual([1, 2, 3]);
    expect(ofType(events, 'step_retrying').map((e) => e.attempt)).toEqual([1, 2]);
  });

  it('the attempt number reaches the tool, with a stable idempotency key', async () => {
    const { engine } = setup();
    const seen: { attempt: number; key: string }[] = [];
    const tool = new Tool({
      name: 'records_attempts',
      execute: (_args, ctx) => {
        seen.push({ attempt: ctx.attempt, key: ctx.idempotencyKey });
        if (ctx.attempt < 3) throw new Error('not yet');
        return 'ok';
      },
    });
    const wf = new WorkflowBuilder('attempts').addStep(new ToolStep('rec', tool).withRetry(4)).build();
    const result = await engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'w' }), { runId: 'run-7' });
    expect(result.status).toBe('completed');
    expect(seen).toEqual([
      { attempt: 1, key: 'run-7:rec' },
      { attempt: 2, key: 'run-7:rec' },
      { attempt: 3, key: 'run-7:rec' },
    ]);
  });
});

describe('backoff', () => {
  it('a plain RecordingClock works as the engine clock (the engine must not call clock.random detached)', async () => {
    // Regression: run.ts once passed `clock.random` detached to nextDelayMs, so a class-based Clock
    // (like the exported RecordingClock) threw on the first retry and the run rejected.
    const clock = new RecordingClock();
    const engine = new WorkflowEngine({ logger: quietLogger(), clock });
    engines.push(engine);
    const ledger = new Ledger();
    const result = await runOne(engine, new ToolStep('flaky', flakyTool(ledger, 'k', 1)).withRetry(1));
    expect(result.status).toBe('completed');
    expect(result.steps[0]!.attempts).toBe(2);
    expect(clock.sleeps).toHaveLength(1);
  });

  it('delays grow exponentially up to the cap; with jitter at its max each delay is its ceiling; step_retrying carries them', async () => {
    const { engine, clock } = setup(); // jitter just under 1: the top of the full-jitter range
    const ledger = new Ledger();
    const events: RunEvent[] = [];
    const step = new ToolStep('backoff', flakyTool(ledger, 'k', Infinity)).withRetry({ maxRetries: 6, initialDelaySeconds: 0.1, maxDelaySeconds: 1, backoffCoefficient: 2 });
    const result = await runOne(engine, step, events);
    expect(result.steps[0]!.attempts).toBe(7);
    const ceilings = [100, 200, 400, 800, 1000, 1000];
    expect(clock.sleeps).toHaveLength(ceilings.length);
    clock.sleeps.forEach((delay, i) => {
      expect(delay, `delay ${i + 1}`).toBeGreaterThanOrEqual(ceilings[i]! - 1);
      expect(delay, `delay ${i + 1}`).toBeLessThanOrEqual(ceilings[i]!);
    });
    const retrying = ofType(events, 'step_retrying');
    expect(retrying.map((e) => e.delayMs)).toEqual(clock.sleeps);
    expect(retrying.map((e) => e.attempt)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(retrying.every((e) => e.reason === 'retry_policy' && e.error.code === ErrorCode.TOOL_ERROR && e.path === 'backoff')).toBe(true);
  });

  it('the default policy starts at 1 s, doubles, and caps at 30 s', async () => {
    const { engine, clock } = setup();
    const result = await runOne(engine, new ToolStep('defaults', flakyTool(new Ledger(), 'k', Infinity)).withRetry(7));
    expect(result.steps[0]!.attempts).toBe(8);
    const ceilings = [1000, 2000, 4000, 8000, 16000, 30000, 30000];
    clock.sleeps.forEach((delay, i) => {
      expect(delay).toBeGreaterThanOrEqual(ceilings[i]! - 1);
      expect(delay).toBeLessThanOrEqual(ceilings[i]!);
    });
    expect(clock.sleeps).toHaveLength(7);
  });

  it('jitter is full: a random draw of 0 gives no wait, 0.5 gives half the ceiling', async () => {
    const zero = setup(0);
    await runOne(zero.engine, new ToolStep('j0', flakyTool(new Ledger(), 'k', Infinity)).withRetry({ maxRetries: 3, initialDelaySeconds: 1 }));
    expect(zero.clock.sleeps).toEqual([0, 0, 0]);
    const half = setup(0.5);
    await runOne(half.engine, new ToolStep('j5', flakyTool(new Ledger(), 'k', Infinity)).withRetry({ maxRetries: 3, initialDelaySeconds: 1 }));
    expect(half.clock.sleeps).toEqual([500, 1000, 2000]);
  });
});

describe('what is not retried', () => {
  it('NonRetryableError (or an error with retryable: false) stops at once, with no backoff', async () => {
    const { engine, clock } = setup();
    const a = new Ledger();
    const events: RunEvent[] = [];
    const result = await runOne(engine, new ToolStep('declined', flakyTool(a, 'k', Infinity, () => new NonRetryableError('card declined'))).withRetry(3), events);
    expect(result.status).toBe('failed');
    expect(result.steps[0]!.attempts).toBe(1);
    expect(result.steps[0]!.error).toMatchObject({ code: ErrorCode.TOOL_ERROR, retryable: false, message: 'card declined' });
    expect(a.count('k')).toBe(1);
    expect(ofType(events, 'step_retrying')).toEqual([]);

    const b = new Ledger();
    const flagged = await runOne(engine, new ToolStep('flagged', flakyTool(b, 'k', Infinity, () => Object.assign(new Error('no'), { retryable: false }))).withRetry(3));
    expect(flagged.steps[0]!.attempts).toBe(1);
    expect(b.count('k')).toBe(1);
    expect(clock.sleeps).toEqual([]);
  });

  it('INVALID_TOOL_ARGS stops at once and the tool never runs', async () => {
    const { engine, clock } = setup();
    const ledger = new Ledger();
    const tool = new Tool({
      name: 'needs_number',
      parameters: { type: 'object', properties: { n: { type: 'number' } }, required: ['n'] },
      execute: (args: { n: number }) => (ledger.hit('ran'), { doubled: args.n * 2 }),
    });
    const result = await runOne(engine, new ToolStep('bad_args', tool, { n: 'seven' }).withRetry(3));
    expect(result.status).toBe('failed');
    expect(result.steps[0]!.error?.code).toBe(ErrorCode.INVALID_TOOL_ARGS);
    expect(result.steps[0]!.error?.retryable).toBe(false);
    expect(result.steps[0]!.attempts).toBe(1);
    expect(ledger.count('ran')).toBe(0);
    expect(clock.sleeps).toEqual([]);
  });

  it('a throwing params function (USER_FUNCTION_ERROR) is not retried', async () => {
    const { engine, clock } = setup();
    const ledger = new Ledger();
    const step = new ToolStep('bad_params', flakyTool(ledger, 'k', 0))
      .withParamsFunction(() => {
        ledger.hit('params');
        throw new Error('no such field');
      })
      .withRetry(3);
    const result = await runOne(engine, step);
    expect(result.steps[0]!.error?.code).toBe(ErrorCode.USER_FUNCTION_ERROR);
    expect(result.steps[0]!.attempts).toBe(1);
    expect(ledger.count('params')).toBe(1);
    expect(ledger.count('k')).toBe(0);
    expect(clock.sleeps).toEqual([]);
  });

  it('a skipped step is not retried and records no backoff', async () => {
    const { engine, clock } = setup();
    const ledger = new Ledger();
    const events: RunEvent[] = [];
    const gated = new ToolStep('gated', flakyTool(ledger, 'gated', 0)).addCondition(() => false).withRetry(3);
    const noElse = new ConditionalStep('no_else', () => false, new ToolStep('then', flakyTool(ledger, 'then', 0))).withRetry(3);
    const wf = new WorkflowBuilder('skips').addStep(gated).addStep(noElse).build();
    const result = await engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'w' }), { onEvent: (e) => events.push(e) });
    expect(result.status).toBe('completed');
    expect(result.steps.map((s) => s.status)).toEqual(['skipped', 'skipped']);
    expect(result.steps[0]!.attempts).toBe(0);
    expect(result.steps[1]!.attempts).toBeLessThanOrEqual(1);
    expect(ledger.entries).toEqual([]);
    expect(ofType(events, 'step_retrying')).toEqual([]);
    expect(ofType(events, 'step_started').filter((e) => e.path === 'gated')).toEqual([]);
    expect(clock.sleeps).toEqual([]);
  });
});

describe('timeouts', () => {
  it('an inline tool that ignores its signal still ends at the timeout, with TIMEOUT, and is retried', async () => {
    const { engine, clock } = setup();
    const ledger = new Ledger();
    const signals: AbortSignal[] = [];
    const stubborn = new Tool({
      name: 'stubborn',
      execute: (_args, ctx) => {
        ledger.hit('call');
        signals.push(ctx.signal);
        // Ignores its signal; would answer after 10 s.
        return new Promise((resolve) => setTimeout(() => resolve('too late'), 10_000).unref());
      },
    });
    const events: RunEvent[] = [];
    const started = performance.now();
    const result = await runOne(engine, new ToolStep('stubborn', stubborn).withTimeout(0.2).withRetry(1), events);
    const elapsed = performance.now() - started;
    const step = result.steps[0]!;
    expect(result.status).toBe('failed');
    expect(step.error?.code).toBe(ErrorCode.TIMEOUT);
    expect(step.error?.retryable).toBe(true);
    expect(step.attempts).toBe(2);
    expect(ledger.count('call')).toBe(2);
    // Two attempts of 0.2 s each: at least 0.4 s, and nowhere near the tool's own 10 s.
    expect(step.executionTimeMs).toBeGreaterThanOrEqual(380);
    expect(step.executionTimeMs).toBeLessThan(3_000);
    expect(elapsed).toBeLessThan(3_000);
    // Each attempt's signal fired with the TIMEOUT reason.
    expect(signals.map((s) => s.aborted)).toEqual([true, true]);
    expect((signals[0]!.reason as { code?: string }).code).toBe(ErrorCode.TIMEOUT);
    const retrying = ofType(events, 'step_retrying');
    expect(retrying).toHaveLength(1);
    expect(retrying[0]!.error.code).toBe(ErrorCode.TIMEOUT);
    // Timeouts back off like any retryable failure.
    expect(clock.sleeps).toEqual([retrying[0]!.delayMs]);
    expect(retrying[0]!.delayMs).toBeGreaterThan(0);
  });

  it('a timed-out attempt followed by a quick one completes', async () => {
    const { engine } = setup();
    let calls = 0;
    const slowThenQuick = new Tool({
      name: 'slow_then_quick',
      execute: (_args, ctx) => {
        calls += 1;
        if (ctx.attempt === 1) return new Promise(() => {}); // never settles
        return { done: ctx.attempt };
      },
    });
    const result = await runOne(engine, new ToolStep('sq', slowThenQuick).withTimeout(0.15).withRetry(2));
    expect(result.status).toBe('completed');
    expect(result.steps[0]!.attempts).toBe(2);
    expect(result.context.get('done')).toBe(2);
    expect(calls).toBe(2);
  });
});

describe('retrying composites resumes them', () => {
  it('retrying a ParallelStep re-runs only the failed branches (continue_on_partial_failure)', async () => {
    const { engine } = setup();
    const ledger = new Ledger();
    const events: RunEvent[] = [];
    const par = new ParallelStep('par')
      .addBranch(new ToolStep('a', flakyTool(ledger, 'a', 0)))
      .addBranch(new ToolStep('b', flakyTool(ledger, 'b', 0)))
      .addBranch(new ToolStep('c', flakyTool(ledger, 'c', 1)))
      .withFailurePolicy('continue_on_partial_failure')
      .withMinimumSuccessCount(3)
      .withRetry(2);
    const result = await runOne(engine, par, events);
    expect(result.status).toBe('completed');
    expect(ledger.count('a')).toBe(1);
    expect(ledger.count('b')).toBe(1);
    expect(ledger.count('c')).toBe(2);
    const step = result.steps[0]!;
    expect(step.attempts).toBe(2);
    expect(step.output).toEqual({ a: { a: 1 }, b: { b: 1 }, c: { c: 2 } });
    expect(result.context.variables).toMatchObject({ a: 1, b: 1, c: 2 });
    expect(findStep(result, 'par/c').attempts).toBe(2);
    expect(findStep(result, 'par/a').attempts).toBe(1);
    const starts = ofType(events, 'step_started');
    expect(starts.filter((e) => e.path === 'par/a')).toHaveLength(1);
    expect(starts.filter((e) => e.path === 'par/c').map((e) => e.attempt)).toEqual([1, 2]);
  });

  it('retrying a fail_fast ParallelStep keeps branches that had already succeeded', async () => {
    const { engine } = setup();
    const ledger = new Ledger();
    const aDone = deferred();
    const bDone = deferred();
    const tool = (key: string, done: { resolve(): void }) =>
      new Tool({
        name: `ok_${key}`,
        execute: () => {
          ledger.hit(key);
          done.resolve();
          return { [key]: true };
        },
      });
    const lateFailure = new Tool({
      name: 'late_failure',
      execute: async () => {
        const call = ledger.hit('c');
        await Promise.all([aDone.promise, bDone.promise]);
        if (call === 1) throw new Error('c failed after its siblings finished');
        return { c: true };
      },
    });
    const par = new ParallelStep('par')
      .addBranch(new ToolStep('a', tool('a', aDone)))
      .addBranch(new ToolStep('b', tool('b', bDone)))
      .addBranch(new ToolStep('c', lateFailure))
      .withRetry(1);
    const result = await runOne(engine, par);
    expect(result.status).toBe('completed');
    expect([ledger.count('a'), ledger.count('b'), ledger.count('c')]).toEqual([1, 1, 2]);
    expect(result.context.variables).toMatchObject({ a: true, b: true, c: true });
  });

  it('retrying a LoopStep resumes from the failed iteration: earlier iterations ran once', async () => {
    const { engine } = setup();
    const ledger = new Ledger();
    const body = new ToolStep(
      'body',
      new Tool({
        name: 'iterate',
        execute: (args: { i: number }) => {
          const call = ledger.hit(`iter${args.i}`);
          if (args.i === 2 && call === 1) throw new Error('iteration 2 failed once');
          return { last: args.i, [`item${args.i}`]: call };
        },
      }),
    ).withParamsFunction((ctx) => ({ i: ctx.loop!.iteration }));
    const events: RunEvent[] = [];
    const loop = new LoopStep('loop', body, () => true, 4).withRetry(1);
    const result = await runOne(engine, loop, events);
    expect(result.status).toBe('completed');
    expect([0, 1, 2, 3].map((i) => ledger.count(`iter${i}`))).toEqual([1, 1, 2, 1]);
    const step = result.steps[0]!;
    expect(step.attempts).toBe(2);
    expect(step.output).toEqual([
      { last: 0, item0: 1 },
      { last: 1, item1: 1 },
      { last: 2, item2: 2 },
      { last: 3, item3: 1 },
    ]);
    // Variables from replayed iterations are rebuilt too.
    expect(result.context.variables).toMatchObject({ last: 3, item0: 1, item1: 1, item2: 2, item3: 1 });
    expect(ofType(events, 'step_started').filter((e) => e.path === 'loop[0]/body')).toHaveLength(1);
    expect(ofType(events, 'step_started').filter((e) => e.path === 'loop[2]/body').map((e) => e.attempt)).toEqual([1, 2]);
  });
});

describe('retrying composites resumes them, deeper cases', () => {
  it("a ParallelStep that hits its own timeout and is retried keeps the branches that had finished", async () => {
    const { engine } = setup();
    const ledger = new Ledger();
    const quick = new Tool({ name: 'quick', execute: () => (ledger.hit('quick'), { quick: true }) });
    const hangsOnce = new Tool({
      name: 'hangs_once',
      execute: () => (ledger.hit('slow') === 1 ? new Promise(() => {}) : { slow: true }),
    });
    const par = new ParallelStep('par').addBranch(new ToolStep('quick', quick)).addBranch(new ToolStep('slow', hangsOnce)).withTimeout(0.2).withRetry(1);
    const events: RunEvent[] = [];
    const result = await runOne(engine, par, events);
    expect(result.status).toBe('completed');
    expect([ledger.count('quick'), ledger.count('slow')]).toEqual([1, 2]);
    expect(ofType(events, 'step_retrying').map((e) => [e.path, e.error.code])).toEqual([['par', ErrorCode.TIMEOUT]]);
    expect(result.context.variables).toMatchObject({ quick: true, slow: true });
  });

  it('a parallel retry resumes a failed loop branch at its failed iteration (resumption nests)', async () => {
    const { engine } = setup();
    const ledger = new Ledger();
    const body = new ToolStep(
      'body',
      new Tool({
        name: 'nested_body',
        execute: (args: { i: number }) => {
          const call = ledger.hit(`iter${args.i}`);
          if (args.i === 2 && call === 1) throw new Error('iteration 2 failed once');
          return { [`n${args.i}`]: call };
        },
      }),
    ).withParamsFunction((ctx) => ({ i: ctx.loop!.iteration }));
    const par = new ParallelStep('par')
      .addBranch(new ToolStep('sibling', flakyTool(ledger, 'sibling', 0)))
      .addBranch(new LoopStep('loop', body, () => true, 4))
      .withFailurePolicy('continue_on_partial_failure')
      .withMinimumSuccessCount(2)
      .withRetry(1);
    const result = await runOne(engine, par);
    expect(result.status).toBe('completed');
    expect(ledger.count('sibling')).toBe(1);
    expect([0, 1, 2, 3].map((i) => ledger.count(`iter${i}`))).toEqual([1, 1, 2, 1]);
    expect(findStep(result, 'par/loop').attempts).toBe(2);
    expect(findStep(result, 'par/loop').output).toEqual([{ n0: 1 }, { n1: 1 }, { n2: 2 }, { n3: 1 }]);
  });
});

describe('nested steps honour their own settings', () => {
  it('parallel branches: own withRetry, own withTimeout, own conditions', async () => {
    const { engine } = setup();
    const ledger = new Ledger();
    const hang = new Tool({ name: 'hang', execute: () => new Promise(() => {}) });
    const par = new ParallelStep('par')
      .addBranch(new ToolStep('flaky', flakyTool(ledger, 'flaky', 2)).withRetry(2))
      .addBranch(new ToolStep('slow', hang).withTimeout(0.15))
      .addBranch(new ToolStep('gated', flakyTool(ledger, 'gated', 0)).addCondition(async () => false).withRetry(3))
      .withFailurePolicy('continue_on_partial_failure')
      .withMinimumSuccessCount(1);
    const started = performance.now();
    const result = await runOne(engine, par);
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(result.status).toBe('completed');
    expect(result.steps[0]!.attempts).toBe(1);
    expect(findStep(result, 'par/flaky')).toMatchObject({ status: 'completed', attempts: 3 });
    expect(ledger.count('flaky')).toBe(3);
    expect(findStep(result, 'par/slow').status).toBe('failed');
    expect(findStep(result, 'par/slow').error?.code).toBe(ErrorCode.TIMEOUT);
    expect(findStep(result, 'par/gated').status).toBe('skipped');
    expect(ledger.count('gated')).toBe(0);
  });

  it('a loop body and a conditional branch retry on their own, without retrying their parent', async () => {
    const { engine } = setup();
    const ledger = new Ledger();
    const body = new ToolStep(
      'body',
      new Tool({
        name: 'body_tool',
        execute: (args: { i: number }) => {
          const call = ledger.hit(`iter${args.i}`);
          if (args.i === 1 && call === 1) throw new Error('transient');
          return { [`i${args.i}`]: call };
        },
      }),
    )
      .withParamsFunction((ctx) => ({ i: ctx.loop!.iteration }))
      .withRetry(1);
    const loop = new LoopStep('loop', body, (_ctx, i) => i < 3);
    const branch = new ConditionalStep('cond', () => true, new ToolStep('inner', flakyTool(ledger, 'inner', 1)).withRetry(1));
    const wf = new WorkflowBuilder('nested').addStep(loop).addStep(branch).build();
    const result = await engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'w' }));
    expect(result.status).toBe('completed');
    expect(result.steps[0]!.attempts).toBe(1);
    expect(findStep(result, 'loop[1]/body').attempts).toBe(2);
    expect([0, 1, 2].map((i) => ledger.count(`iter${i}`))).toEqual([1, 2, 1]);
    expect(result.steps[1]!.attempts).toBe(1);
    expect(findStep(result, 'cond/inner').attempts).toBe(2);
    expect(result.context.variables).toMatchObject({ i0: 1, i1: 2, i2: 1, inner: 2 });
  });
});

describe('events', () => {
  it('every retry is an event between the attempts it separates', async () => {
    const { engine } = setup();
    const { events, onEvent } = eventCollector();
    const wf = new WorkflowBuilder('ev').addStep(new ToolStep('f', flakyTool(new Ledger(), 'k', 2)).withRetry(2)).build();
    await engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'w' }), { onEvent });
    expect(events.filter((e) => 'path' in e && e.path === 'f').map((e) => e.type)).toEqual([
      'step_started',
      'step_retrying',
      'step_started',
      'step_retrying',
      'step_started',
      'step_completed',
    ]);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  });
});
