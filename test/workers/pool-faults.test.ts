/**
 * Fault isolation on the real Piscina pool (reliability.md §1.11, §3 C tests 10-15, §4.3): each fault
 * fails only its own step, with a clear error code, and the same engine and pool keep serving.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ErrorCode,
  ParallelStep,
  Tool,
  ToolStep,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowEngine,
  type ExecuteOptions,
  type StepLike,
  type WorkflowResult,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';
import { eventCollector, ofType, recordingClock, sleep, waitFor, within } from '../integration/support.ts';

const fixture = (name: string) => new URL(`../fixtures/tools/${name}.ts`, import.meta.url);

const tools = {
  threadId: new Tool({ name: 'thread_id', module: fixture('thread-id') }),
  busy: new Tool({ name: 'busy_thread', module: fixture('busy-thread') }),
  throws: new Tool({ name: 'throws', module: fixture('throws') }),
  nonRetryable: new Tool({ name: 'non_retryable', module: fixture('non-retryable') }),
  spin: new Tool({ name: 'spin', module: fixture('spin') }),
  exit: new Tool({ name: 'exit_tool', module: fixture('exit') }),
  exitLater: new Tool({ name: 'exit_later', module: fixture('exit-later') }),
  oom: new Tool({ name: 'oom', module: fixture('oom') }),
  badOutput: new Tool({ name: 'bad_output', module: fixture('bad-output') }),
  bigOutput: new Tool({ name: 'big_output', module: fixture('big-output') }),
  invocation: new Tool({ name: 'invocation', module: fixture('invocation') }),
  notATool: new Tool({ name: 'not_a_tool', module: fixture('not-a-tool') }),
  missing: new Tool({ name: 'missing_module', module: fixture('does-not-exist') }),
};

const ctx = (id = 'pool-faults') => new WorkflowContext({ workflowId: id });

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'jafw-pool-faults-'));
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/**
 * `before` (a healthy pool step), then the faulty step, then `after`: the run must fail at the fault
 * only, keeping `before`'s result and never starting `after`.
 */
async function runFault(engine: WorkflowEngine, fault: StepLike, options: ExecuteOptions = {}): Promise<WorkflowResult> {
  const wf = new WorkflowBuilder(`fault-${fault.id}`)
    .addStep(new ToolStep('before', tools.threadId, { n: 1 }))
    .addStep(fault)
    .addStep(new ToolStep('after', tools.threadId, { n: 2 }))
    .build();
  const result = await within(engine.executeWorkflow(wf, ctx(), options), 20_000, `run with faulty step ${fault.id}`);
  expect(result.status).toBe('failed');
  expect(result.steps.map((s) => [s.stepId, s.status]), JSON.stringify(result.error)).toEqual([
    ['before', 'completed'],
    [fault.id, 'failed'],
  ]);
  expect(result.error?.stepPath).toBe(fault.id);
  expect(result.error?.code).toBe(result.steps[1]!.error?.code);
  expect(result.context.has('h1')).toBe(true);
  expect(result.context.has('h2')).toBe(false);
  return result;
}

/**
 * Two busy pool branches at once, repeated until they run on two different threads (a replacement
 * thread needs a moment to boot; until then both tasks may share the ready one). Every run must
 * complete. Returns the two thread ids.
 */
async function healthyRun(engine: WorkflowEngine, label: string): Promise<number[]> {
  const wf = new WorkflowBuilder(`healthy-${label}`)
    .addStep(
      new ParallelStep('both')
        .addBranch(new ToolStep('x', tools.busy, { key: 'tx', ms: 150 }).withTimeout(10))
        .addBranch(new ToolStep('y', tools.busy, { key: 'ty', ms: 150 }).withTimeout(10)),
    )
    .build();
  const deadline = Date.now() + 15_000;
  for (;;) {
    const result = await within(engine.executeWorkflow(wf, ctx()), 20_000, `healthy run after ${label}`);
    expect(result.status, JSON.stringify(result.error)).toBe('completed');
    const tx = result.context.get<number>('tx');
    const ty = result.context.get<number>('ty');
    expect(typeof tx).toBe('number');
    expect(typeof ty).toBe('number');
    if (tx !== ty) return [tx, ty];
    if (Date.now() > deadline) throw new Error(`after ${label}: the pool never served two branches on two threads within 15 s`);
  }
}

/** Runs `tool` on both threads at once (repeating until two distinct threads answered), so its module is loaded on each. */
async function warmUp(engine: WorkflowEngine, tool: Tool, args: (key: string) => Record<string, unknown>): Promise<void> {
  const wf = new WorkflowBuilder(`warm-${tool.name}`)
    .addStep(new ParallelStep('warm').addBranch(new ToolStep('w1', tool, args('w1')).withOutputKey('w1')).addBranch(new ToolStep('w2', tool, args('w2')).withOutputKey('w2')))
    .build();
  const deadline = Date.now() + 15_000;
  for (;;) {
    const result = await within(engine.executeWorkflow(wf, ctx()), 20_000, `warming up ${tool.name}`);
    expect(result.status, JSON.stringify(result.error)).toBe('completed');
    if (JSON.stringify(result.context.get('w1')) !== JSON.stringify(result.context.get('w2'))) return;
    if (Date.now() > deadline) throw new Error(`could not run ${tool.name} on both threads within 15 s`);
  }
}

async function poolBackToSize(engine: WorkflowEngine, size: number): Promise<void> {
  await waitFor(() => engine.poolStats()?.threads === size, `the pool to be back to ${size} threads`);
}

describe('pool faults (real Piscina threads)', () => {
  const clock = recordingClock();
  let engine: WorkflowEngine;

  beforeAll(() => {
    engine = new WorkflowEngine({ tools: Object.values(tools), pool: { maxThreads: 2 }, logger: quietLogger(), clock });
  });
  afterAll(async () => {
    await engine.close();
  });

  it('a throwing pool tool fails its step with TOOL_ERROR, retried per policy, and the next run succeeds', async () => {
    for (const async of [false, true]) {
      const sleepsBefore = clock.sleeps.length;
      const { events, onEvent } = eventCollector();
      const result = await runFault(engine, new ToolStep('fault', tools.throws, { async }).withRetry(2), { onEvent });
      const fault = result.steps[1]!;
      expect(fault.error?.code).toBe(ErrorCode.TOOL_ERROR);
      expect(fault.error?.retryable).toBe(true);
      // The message of the last attempt's error crosses the thread intact.
      expect(fault.error?.message).toBe(`${async ? 'async ' : ''}boom on attempt 3`);
      expect(fault.attempts).toBe(3);
      expect(ofType(events, 'step_started').filter((e) => e.path === 'fault').map((e) => e.attempt)).toEqual([1, 2, 3]);
      expect(ofType(events, 'step_retrying').map((e) => [e.path, e.attempt, e.error.code])).toEqual([
        ['fault', 1, 'TOOL_ERROR'],
        ['fault', 2, 'TOOL_ERROR'],
      ]);
      expect(clock.sleeps.length - sleepsBefore).toBe(2);
    }
    // A tool error is data: the thread survives, the pool keeps its size.
    expect(engine.poolStats()?.threads).toBe(2);
    await healthyRun(engine, 'throw');
  });

  it('a pool tool that succeeds on a later attempt completes the step', async () => {
    const wf = new WorkflowBuilder('eventually').addStep(new ToolStep('flaky', tools.throws, { succeedOnAttempt: 2 }).withRetry(3)).build();
    const result = await engine.executeWorkflow(wf, ctx());
    expect(result.status).toBe('completed');
    expect(result.steps[0]!.attempts).toBe(2);
    expect(result.context.get('recoveredOnAttempt')).toBe(2);
  });

  it("NonRetryableError thrown inside a pool thread stops retries at once (attempts 1 despite withRetry(3))", async () => {
    const sleepsBefore = clock.sleeps.length;
    const { events, onEvent } = eventCollector();
    const result = await runFault(engine, new ToolStep('fault', tools.nonRetryable, {}).withRetry(3), { onEvent });
    const fault = result.steps[1]!;
    expect(fault.attempts).toBe(1);
    expect(fault.error?.code).toBe(ErrorCode.TOOL_ERROR);
    expect(fault.error?.retryable).toBe(false);
    expect(fault.error?.message).toContain('card declined (attempt 1)');
    expect(ofType(events, 'step_retrying')).toEqual([]);
    expect(clock.sleeps.length).toBe(sleepsBefore);
    await healthyRun(engine, 'non-retryable');
  });

  it('a while(true) tool is stopped at its timeout (TIMEOUT), its thread is replaced and the pool keeps serving', async () => {
    // Load the spin module on both threads first, so the 0.3 s timeout is spent spinning, not loading it.
    await warmUp(engine, tools.spin, (key) => ({ untilMs: 150, key }));
    const [t1, t2] = await healthyRun(engine, 'before-spin');
    const heartbeat = join(scratch, 'spin-timeout.beat');
    const { events, onEvent } = eventCollector();
    const started = performance.now();
    const faulty = runFault(engine, new ToolStep('fault', tools.spin, { heartbeatFile: heartbeat }).withTimeout(0.3), { onEvent });

    // While one thread spins, the other still serves a concurrent run.
    await waitFor(() => readBeats(heartbeat) > 0, 'the spinning tool to start');
    const concurrent = new WorkflowBuilder('concurrent').addStep(new ToolStep('quick', tools.busy, { key: 'q', ms: 1 }).withTimeout(10)).build();
    const other = await engine.executeWorkflow(concurrent, ctx());
    expect(other.status).toBe('completed');

    const result = await faulty;
    const elapsed = performance.now() - started;
    const fault = result.steps[1]!;
    expect(fault.error?.code).toBe(ErrorCode.TIMEOUT);
    expect(fault.error?.message).toContain('0.3 s');
    expect(fault.attempts).toBe(1);
    // Ends near its timeout: not before it, and nowhere near "never".
    expect(fault.executionTimeMs).toBeGreaterThanOrEqual(290);
    expect(fault.executionTimeMs).toBeLessThan(3_000);
    expect(elapsed).toBeLessThan(5_000);
    expect(ofType(events, 'step_failed').find((e) => e.path === 'fault')?.result.error?.code).toBe('TIMEOUT');

    // The spinning thread was terminated: the heartbeat stops (termination is asynchronous, so allow it
    // a few seconds, then require 200 ms without a beat where a live loop writes one every 10 ms).
    await waitFor(async () => {
      const beats = readBeats(heartbeat);
      await sleep(200);
      return readBeats(heartbeat) === beats;
    }, 'the spinning tool to stop', 5_000);

    await poolBackToSize(engine, 2);
    const after = await healthyRun(engine, 'spin');
    // One of the two threads now serving is new (Node thread ids only grow).
    expect(Math.max(...after)).toBeGreaterThan(Math.max(t1!, t2!));
  });

  it('a tool that calls process.exit(3) fails its step with WORKER_CRASHED and a second run succeeds', async () => {
    const result = await runFault(engine, new ToolStep('fault', tools.exit, { code: 3 }));
    const fault = result.steps[1]!;
    expect(fault.error?.code).toBe(ErrorCode.WORKER_CRASHED);
    expect(fault.error?.message).toMatch(/exited with code:? 3/);
    expect(fault.attempts).toBe(1);
    await poolBackToSize(engine, 2);
    await healthyRun(engine, 'exit');
    // And the same workflow shape runs to completion on the same engine.
    const wf = new WorkflowBuilder('after-exit').addStep(new ToolStep('one', tools.threadId, { n: 7 }).withTimeout(10)).build();
    const second = await within(engine.executeWorkflow(wf, ctx()), 15_000, 'second run after process.exit');
    expect(second.status).toBe('completed');
    expect(typeof second.context.get('h7')).toBe('number');
  });

  it('a crashing branch fails only its own branch; a sibling on the other thread completes', async () => {
    const wf = new WorkflowBuilder('crash-branch')
      .addStep(
        new ParallelStep('par')
          .addBranch(new ToolStep('crash', tools.exit, { code: 5 }).withRetry(1))
          .addBranch(new ToolStep('ok', tools.busy, { key: 'ok', ms: 100 }))
          .withFailurePolicy('continue_on_partial_failure')
          .withMinimumSuccessCount(1),
      )
      .build();
    const result = await within(engine.executeWorkflow(wf, ctx()), 20_000, 'crash-branch run');
    expect(result.status).toBe('completed');
    const par = result.steps[0]!;
    const crash = par.children.find((c) => c.stepId === 'crash')!;
    const ok = par.children.find((c) => c.stepId === 'ok')!;
    expect(crash.status).toBe('failed');
    expect(crash.error?.code).toBe(ErrorCode.WORKER_CRASHED);
    // WORKER_CRASHED is retryable: both attempts ran, each on a fresh thread.
    expect(crash.attempts).toBe(2);
    expect(ok.status).toBe('completed');
    expect(typeof result.context.get('ok')).toBe('number');
    await poolBackToSize(engine, 2);
    await healthyRun(engine, 'crash-branch');
  });

  it('a non-serialisable output (function, BigInt, cycle) fails with OUTPUT_NOT_SERIALIZABLE, without retries', async () => {
    for (const kind of ['function', 'bigint', 'cycle'] as const) {
      const result = await runFault(engine, new ToolStep('fault', tools.badOutput, { kind }).withRetry(2));
      const fault = result.steps[1]!;
      expect(fault.error?.code, kind).toBe(ErrorCode.OUTPUT_NOT_SERIALIZABLE);
      expect(fault.error?.retryable).toBe(false);
      expect(fault.attempts).toBe(1);
    }
    expect(engine.poolStats()?.threads).toBe(2);
    await healthyRun(engine, 'bad-output');
  });

  it('pool branches in a parallel step run on different threads while a concurrent workflow keeps completing', async () => {
    const counter = new Tool({ name: 'tick', execute: () => ({ ticked: true }) });
    const quick = new WorkflowBuilder('quick').addStep(new ToolStep('tick', counter, {})).build();
    const wf = new WorkflowBuilder('spread')
      .addStep(
        new ParallelStep('spread')
          .addBranch(new ToolStep('a', tools.busy, { key: 'ta', ms: 400 }))
          .addBranch(new ToolStep('b', tools.busy, { key: 'tb', ms: 400 })),
      )
      .build();
    let done = false;
    const parallel = engine.executeWorkflow(wf, ctx()).finally(() => {
      done = true;
    });
    let completedMeanwhile = 0;
    while (!done) {
      const r = await engine.executeWorkflow(quick, ctx('quick'));
      expect(r.status).toBe('completed');
      if (!done) completedMeanwhile += 1;
      await sleep(5);
    }
    const result = await parallel;
    expect(result.status).toBe('completed');
    expect(result.context.get('ta')).not.toBe(result.context.get('tb'));
    // The coordinator's event loop stayed free: inline runs completed while both threads were busy.
    expect(completedMeanwhile).toBeGreaterThanOrEqual(3);
  });

  it("a pool tool receives { idempotencyKey: '<runId>:<stepPath>', attempt, runId, stepPath }: attempt grows, the key is stable", async () => {
    const ledger = join(scratch, 'invocation.jsonl');
    const wf = new WorkflowBuilder('invocation')
      .addStep(new ParallelStep('ctxpar').addBranch(new ToolStep('ctx_step', tools.invocation, { ledger, succeedOnAttempt: 3 }).withRetry(3)))
      .build();
    const context = new WorkflowContext({ workflowId: 'order-77', userContext: { tenant: 't1' } });
    const result = await engine.executeWorkflow(wf, context, { runId: 'run-ctx-1' });
    expect(result.status).toBe('completed');
    expect(result.runId).toBe('run-ctx-1');
    const seen = readFileSync(ledger, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { idempotencyKey: string; attempt: number; runId: string; stepPath: string; userContext: unknown });
    expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3]);
    for (const s of seen) {
      expect(s.idempotencyKey).toBe('run-ctx-1:ctxpar/ctx_step');
      expect(s.runId).toBe('run-ctx-1');
      expect(s.stepPath).toBe('ctxpar/ctx_step');
      expect(s.userContext).toEqual({ tenant: 't1' });
    }
    const step = result.steps[0]!.children[0]!;
    expect(step.path).toBe('ctxpar/ctx_step');
    expect(step.attempts).toBe(3);

    // Another run of the same workflow gets its own key.
    rmSync(ledger);
    const again = await engine.executeWorkflow(wf, context, { runId: 'run-ctx-2' });
    expect(again.status).toBe('completed');
    const keys = readFileSync(ledger, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { idempotencyKey: string }).idempotencyKey);
    expect(new Set(keys)).toEqual(new Set(['run-ctx-2:ctxpar/ctx_step']));
  });
});

describe('a tool that kills its thread after returning (reliability.md §3 C test 11, second case)', () => {
  // Its own engine: if the leftover timer fires during a later task, only this block's runs see it.
  let engine: WorkflowEngine;
  beforeAll(() => {
    engine = new WorkflowEngine({ tools: [tools.threadId, tools.busy, tools.exitLater], pool: { maxThreads: 2 }, logger: quietLogger(), clock: recordingClock() });
  });
  afterAll(async () => {
    await engine.close();
  });

  it('the exit happens while the thread is idle: its step completed, and no later, unrelated step fails with WORKER_CRASHED', async () => {
    const wf = new WorkflowBuilder('exit-later').addStep(new ToolStep('leaves_a_bomb', tools.exitLater, { afterMs: 10 })).build();
    const result = await engine.executeWorkflow(wf, ctx());
    expect(result.status).toBe('completed');
    const bombThread = result.context.get<number>('exitedThread');
    expect(typeof bombThread).toBe('number');
    // Give the idle thread time to run its 10 ms timer (a settling wait, not a timing assertion).
    await sleep(300);
    await poolBackToSize(engine, 2);
    for (let i = 0; i < 3; i++) {
      const threads = await healthyRun(engine, `exit-later #${i + 1}`);
      expect(threads).not.toContain(bombThread);
    }
  });
});

describe('bad tool modules and bad inputs', () => {
  let engine: WorkflowEngine;
  beforeAll(() => {
    engine = new WorkflowEngine({ tools: Object.values(tools), pool: { maxThreads: 2 }, logger: quietLogger(), clock: recordingClock() });
  });
  afterAll(async () => {
    await engine.close();
  });

  it('a module that is missing, or whose default export is not a tool, fails with TOOL_MODULE_INVALID, without retries', async () => {
    for (const tool of [tools.missing, tools.notATool]) {
      const result = await runFault(engine, new ToolStep('fault', tool, {}).withRetry(2));
      const fault = result.steps[1]!;
      expect(fault.error?.code, tool.name).toBe(ErrorCode.TOOL_MODULE_INVALID);
      expect(fault.error?.retryable).toBe(false);
      expect(fault.attempts).toBe(1);
    }
    expect(engine.poolStats()?.threads).toBe(2);
    await healthyRun(engine, 'bad-module');
  });

  it('a userContext that cannot cross to a thread fails the step clearly (not retried) and leaves both threads serving', async () => {
    const wf = new WorkflowBuilder('uncloneable').addStep(new ToolStep('needs_clone', tools.threadId, { n: 3 }).withRetry(2)).build();
    const context = new WorkflowContext({ workflowId: 'w', userContext: { onDone: () => 'a function cannot be cloned' } });
    const result = await within(engine.executeWorkflow(wf, context), 15_000, 'run with an uncloneable userContext');
    expect(result.status).toBe('failed');
    const step = result.steps[0]!;
    expect(step.error?.retryable).toBe(false);
    expect(step.error?.message).toMatch(/cannot be sent to a pool thread/);
    expect(step.attempts).toBe(1);
    await healthyRun(engine, 'uncloneable');
  });
});

describe('a bounded pool queue', () => {
  let engine: WorkflowEngine;
  beforeAll(() => {
    engine = new WorkflowEngine({ tools: [tools.threadId, tools.busy], pool: { maxThreads: 2, maxQueue: 1 }, logger: quietLogger(), clock: recordingClock() });
  });
  afterAll(async () => {
    await engine.close();
  });

  it('tasks beyond the queue limit fail with POOL_QUEUE_FULL (retryable); the rest complete and the pool keeps serving', async () => {
    const par = new ParallelStep('burst').withFailurePolicy('continue_on_partial_failure').withMinimumSuccessCount(0);
    for (let i = 0; i < 5; i++) par.addBranch(new ToolStep(`t${i}`, tools.busy, { key: `t${i}`, ms: 200 }));
    const result = await within(engine.executeWorkflow(new WorkflowBuilder('burst').addStep(par).build(), ctx()), 20_000, 'burst');
    const children = result.steps[0]!.children;
    const completed = children.filter((c) => c.status === 'completed');
    const failed = children.filter((c) => c.status === 'failed');
    expect(completed.length + failed.length).toBe(5);
    // Two threads plus one queue slot: at least three run, at least one is refused.
    expect(completed.length).toBeGreaterThanOrEqual(3);
    expect(failed.length).toBeGreaterThanOrEqual(1);
    for (const f of failed) {
      expect(f.error?.code).toBe(ErrorCode.POOL_QUEUE_FULL);
      expect(f.error?.retryable).toBe(true);
    }
    await healthyRun(engine, 'queue-full');
  });
});

describe('pool faults under resource limits', () => {
  let engine: WorkflowEngine;
  beforeAll(() => {
    engine = new WorkflowEngine({
      tools: [tools.threadId, tools.busy, tools.oom],
      pool: { maxThreads: 2, resourceLimits: { maxOldGenerationSizeMb: 32 } },
      logger: quietLogger(),
      clock: recordingClock(),
    });
  });
  afterAll(async () => {
    await engine.close();
  });

  it('a tool that exhausts its heap fails with WORKER_OUT_OF_MEMORY; the coordinator survives and the next run succeeds', async () => {
    const result = await runFault(engine, new ToolStep('fault', tools.oom, {}).withTimeout(20));
    const fault = result.steps[1]!;
    expect(fault.error?.code).toBe(ErrorCode.WORKER_OUT_OF_MEMORY);
    expect(fault.error?.retryable).toBe(false);
    expect(fault.attempts).toBe(1);
    await poolBackToSize(engine, 2);
    await healthyRun(engine, 'oom');
  });
});

describe('output size limit', () => {
  let engine: WorkflowEngine;
  beforeAll(() => {
    engine = new WorkflowEngine({ tools: [tools.threadId, tools.busy, tools.bigOutput], pool: { maxThreads: 2 }, logger: quietLogger(), maxOutputBytes: 1024, clock: recordingClock() });
  });
  afterAll(async () => {
    await engine.close();
  });

  it('an output over maxOutputBytes fails with OUTPUT_TOO_LARGE, without retries; one under it passes', async () => {
    const result = await runFault(engine, new ToolStep('fault', tools.bigOutput, { size: 5_000 }).withRetry(2));
    const fault = result.steps[1]!;
    expect(fault.error?.code).toBe(ErrorCode.OUTPUT_TOO_LARGE);
    expect(fault.error?.retryable).toBe(false);
    expect(fault.attempts).toBe(1);
    expect(fault.error?.details).toMatchObject({ limit: 1024 });

    const small = new WorkflowBuilder('small').addStep(new ToolStep('fits', tools.bigOutput, { size: 500 })).build();
    const ok = await engine.executeWorkflow(small, ctx());
    expect(ok.status).toBe('completed');
    expect((ok.context.get('blob') as string).length).toBe(500);
    await healthyRun(engine, 'too-large');
  });
});

function readBeats(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8')) || 0;
  } catch {
    return 0;
  }
}
