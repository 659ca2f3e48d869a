/**
 * Cancellation (ARCHITECTURE.md "Semantics", invariant 6): aborting a run's signal, or leaving its
 * stream early, aborts running inline tools (their signal fires) and pool tools (their thread is
 * terminated), ends the run `cancelled`, and starts nothing after.
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
  systemClock,
  type Workflow,
  type StepResult,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';
import { aborted, deferred, eventCollector, findStep, Ledger, ofType, sleep, waitFor, within, type Deferred } from './support.ts';

const spin = new Tool({ name: 'spin', module: new URL('../fixtures/tools/spin.ts', import.meta.url) });
const busy = new Tool({ name: 'busy_thread', module: new URL('../fixtures/tools/busy-thread.ts', import.meta.url) });

let engine: WorkflowEngine;
let scratch: string;
beforeAll(() => {
  engine = new WorkflowEngine({ tools: [spin, busy], pool: { maxThreads: 2 }, logger: quietLogger() });
  scratch = mkdtempSync(join(tmpdir(), 'jafw-cancel-'));
});
afterAll(async () => {
  await engine.close();
  rmSync(scratch, { recursive: true, force: true });
});

const ctx = () => new WorkflowContext({ workflowId: 'cancel' });

function beats(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8')) || 0;
  } catch {
    return 0;
  }
}

async function heartbeatStops(file: string): Promise<void> {
  await waitFor(async () => {
    const before = beats(file);
    await sleep(200);
    return beats(file) === before;
  }, `the spinning tool (${file}) to stop`, 5_000);
}

interface Scenario {
  readonly wf: Workflow;
  readonly ledger: Ledger;
  readonly inlineStarted: Deferred;
  readonly heartbeat: string;
  /** Both the inline tool and the pool tool are running. */
  readonly bothRunning: () => Promise<void>;
}

/** first (inline, quick) -> work (parallel: an inline tool waiting on its signal + a while(true) pool tool) -> later. */
function scenario(name: string): Scenario {
  const ledger = new Ledger();
  const inlineStarted = deferred();
  const heartbeat = join(scratch, `${name}.beat`);
  const quick = new Tool({ name: 'quick', execute: () => (ledger.hit('first'), { first: true }) });
  const waiter = new Tool({
    name: 'waiter',
    execute: async (_args, ctx) => {
      ledger.hit('waiter started');
      inlineStarted.resolve();
      await aborted(ctx.signal);
      ledger.hit('waiter signal fired');
      throw new Error('aborted');
    },
  });
  const later = new Tool({ name: 'later', execute: () => (ledger.hit('later'), { later: true }) });
  const wf = new WorkflowBuilder(`cancel-${name}`)
    .addStep(new ToolStep('first', quick))
    .addStep(new ParallelStep('work').addBranch(new ToolStep('inline_wait', waiter)).addBranch(new ToolStep('pool_spin', spin, { heartbeatFile: heartbeat })))
    .addStep(new ToolStep('later', later))
    .build();
  return {
    wf,
    ledger,
    inlineStarted,
    heartbeat,
    bothRunning: async () => {
      await inlineStarted.promise;
      await waitFor(() => beats(heartbeat) > 0, 'the pool tool to start spinning');
    },
  };
}

function expectCancelledAtWork(result: { status: string; error?: { code: string } | undefined; steps: readonly StepResult[] }, s: Scenario): void {
  expect(result.status).toBe('cancelled');
  expect(result.error?.code).toBe(ErrorCode.CANCELLED);
  expect(result.steps.map((st) => [st.stepId, st.status])).toEqual([
    ['first', 'completed'],
    ['work', 'cancelled'],
  ]);
  const work = result.steps[1]!;
  expect(work.children.find((c) => c.stepId === 'inline_wait')?.status).toBe('cancelled');
  expect(work.children.find((c) => c.stepId === 'pool_spin')?.status).toBe('cancelled');
  expect(s.ledger.count('waiter signal fired')).toBe(1);
  expect(s.ledger.count('later')).toBe(0);
}

async function poolServesAgain(): Promise<void> {
  await waitFor(() => engine.poolStats()?.threads === 2, 'the pool to be back to 2 threads');
  const wf = new WorkflowBuilder('after-cancel')
    .addStep(new ParallelStep('p').addBranch(new ToolStep('x', busy, { key: 'x', ms: 50 }).withTimeout(10)).addBranch(new ToolStep('y', busy, { key: 'y', ms: 50 }).withTimeout(10)))
    .build();
  const result = await within(engine.executeWorkflow(wf, ctx()), 15_000, 'a run after the cancellation');
  expect(result.status).toBe('completed');
}

describe('cancelling with execute(ctx, { signal })', () => {
  it('aborts a running inline tool and a running pool tool, ends the run cancelled, and never starts later steps', async () => {
    const s = scenario('signal');
    const controller = new AbortController();
    const { events, onEvent } = eventCollector();
    const running = s.wf.execute(ctx(), { engine, signal: controller.signal, onEvent });
    await within(s.bothRunning(), 10_000, 'both tools starting');
    const abortedAt = performance.now();
    controller.abort();
    const result = await within(running, 10_000, 'the cancelled run');
    expect(performance.now() - abortedAt).toBeLessThan(3_000);
    expectCancelledAtWork(result, s);
    expect(ofType(events, 'step_started').some((e) => e.path === 'later')).toBe(false);
    expect(events.at(-1)?.type).toBe('run_cancelled');
    // The while(true) tool's thread was terminated: it stops beating.
    await heartbeatStops(s.heartbeat);
    await poolServesAgain();
  });

  it('a signal that is already aborted runs nothing', async () => {
    const ledger = new Ledger();
    const tool = new Tool({ name: 't', execute: () => (ledger.hit('ran'), 'x') });
    const wf = new WorkflowBuilder('pre-aborted').addStep(new ToolStep('only', tool)).build();
    const result = await engine.executeWorkflow(wf, ctx(), { signal: AbortSignal.abort() });
    expect(result.status).toBe('cancelled');
    expect(ledger.count('ran')).toBe(0);
  });

  it('aborting during a retry backoff ends the run at once, without waiting out the delay', async () => {
    // Real sleeps, with the jitter pinned so the backoff is ~30 s.
    const realClock = new WorkflowEngine({ logger: quietLogger(), clock: { ...systemClock, random: () => 0.99 } });
    try {
      const ledger = new Ledger();
      const failing = new Tool({ name: 'failing', execute: () => (ledger.hit('attempt'), Promise.reject(new Error('down'))) });
      const wf = new WorkflowBuilder('backoff-cancel').addStep(new ToolStep('f', failing).withRetry({ maxRetries: 3, initialDelaySeconds: 30, maxDelaySeconds: 30 })).build();
      const controller = new AbortController();
      const retrying = deferred<number>();
      const running = realClock.executeWorkflow(wf, ctx(), {
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'step_retrying') retrying.resolve(e.delayMs);
        },
      });
      const delay = await within(retrying.promise, 5_000, 'the first retry');
      const abortedAt = performance.now();
      controller.abort();
      const result = await within(running, 5_000, 'the run cancelled during backoff');
      expect(delay).toBeGreaterThan(20_000);
      expect(performance.now() - abortedAt).toBeLessThan(3_000);
      expect(result.status).toBe('cancelled');
      expect(result.steps[0]!.status).toBe('cancelled');
      expect(ledger.count('attempt')).toBe(1);
    } finally {
      await realClock.close();
    }
  });

  it('cancelling one run leaves a concurrent run on the same engine untouched', async () => {
    const s = scenario('neighbour');
    const controller = new AbortController();
    const victim = engine.executeWorkflow(s.wf, ctx(), { signal: controller.signal });
    const neighbourTool = new Tool({ name: 'neighbour', execute: async () => (await sleep(100), { neighbour: 'done' }) });
    const neighbourWf = new WorkflowBuilder('neighbour').addStep(new ToolStep('n1', neighbourTool)).addStep(new ToolStep('n2', neighbourTool)).build();
    const neighbour = engine.executeWorkflow(neighbourWf, ctx());
    await within(s.bothRunning(), 10_000, 'both tools starting');
    controller.abort();
    const [v, n] = await within(Promise.all([victim, neighbour]), 10_000, 'both runs');
    expectCancelledAtWork(v, s);
    expect(n.status).toBe('completed');
    expect(n.context.get('neighbour')).toBe('done');
    await heartbeatStops(s.heartbeat);
    await poolServesAgain();
  });
});

describe('cancelling by leaving the stream', () => {
  it('a consumer that breaks out of engine.executeWorkflowStream cancels the run', async () => {
    const s = scenario('stream-break');
    const stream = engine.executeWorkflowStream(s.wf, ctx());
    const seen: string[] = [];
    for await (const step of stream) {
      seen.push(`${step.stepId}:${step.status}`);
      // Leave only once the next step's tools are running, so there is something to abort.
      await within(s.bothRunning(), 10_000, 'both tools starting');
      break;
    }
    expect(seen).toEqual(['first:completed']);
    const result = await within(stream.result, 10_000, 'the stream run');
    expectCancelledAtWork(result, s);
    await heartbeatStops(s.heartbeat);
    await poolServesAgain();
  });

  it('stream.cancel() cancels the run too, and the stream ends with the steps so far', async () => {
    const s = scenario('stream-cancel');
    const stream = engine.executeWorkflowStream(s.wf, ctx());
    const collected: string[] = [];
    const consume = (async () => {
      for await (const step of stream) collected.push(`${step.stepId}:${step.status}`);
    })();
    await within(s.bothRunning(), 10_000, 'both tools starting');
    stream.cancel();
    await within(consume, 10_000, 'the stream to end');
    const result = await stream.result;
    expectCancelledAtWork(result, s);
    expect(collected).toEqual(['first:completed', 'work:cancelled']);
    await heartbeatStops(s.heartbeat);
    await poolServesAgain();
  });
});

describe('the cancelled run as data', () => {
  it('names the step that was running and records cancelled (not failed) for it and its children', async () => {
    const s = scenario('data');
    const controller = new AbortController();
    const running = engine.executeWorkflow(s.wf, ctx(), { signal: controller.signal });
    await within(s.bothRunning(), 10_000, 'both tools starting');
    controller.abort();
    const result = await running;
    expect(result.error?.stepPath).toBe('work');
    expect(findStep(result, 'work/pool_spin').error?.code).toBe(ErrorCode.CANCELLED);
    expect(result.failedSteps.map((st) => st.stepId)).toEqual(['work']);
    expect(result.isSuccess).toBe(false);
    await heartbeatStops(s.heartbeat);
    await poolServesAgain();
  });
});
