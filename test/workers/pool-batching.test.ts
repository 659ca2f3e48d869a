/**
 * Batching on the real pool (src/engine/pool-executor.ts, pool-batching.ts): under a backlog, tasks of
 * tools that have proved fast go to a thread several at a time. Each keeps its own result; one
 * cancelled before its turn is skipped without touching the thread; one cancelled during its turn or
 * crashing its thread fails alone, and the others run again alone (those that had finished, a second
 * time: the ledger shows it).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode, Tool, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine, type WorkflowResult } from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';
import { within } from '../integration/support.ts';

const probe = new Tool({ name: 'batch_probe', module: new URL('../fixtures/tools/batch-probe.ts', import.meta.url) });
const twin = new Tool({ name: 'batch_probe_twin', module: new URL('../fixtures/tools/batch-probe-twin.ts', import.meta.url) });
const spinUs = new Tool({ name: 'spin_us', module: new URL('../fixtures/tools/spin-us.ts', import.meta.url) });
const dir = mkdtempSync(join(tmpdir(), 'jaf-pool-batching-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ctx = new WorkflowContext({ workflowId: 'batching' });
let ledgers = 0;
const newLedger = () => join(dir, `ledger-${++ledgers}.log`);
const ran = (ledger: string) => (existsSync(ledger) ? readFileSync(ledger, 'utf8').trim().split('\n') : []);
const count = (ledger: string, label: string) => ran(ledger).filter((l) => l === label).length;

interface ProbeArgs {
  readonly ledger: string;
  readonly label: string;
  readonly spinMs?: number;
  readonly exit?: boolean;
}

function probeRun(engine: WorkflowEngine, args: ProbeArgs, timeoutSeconds?: number, tool: Tool = probe): Promise<WorkflowResult> {
  const step = new ToolStep('probe', tool, { ...args });
  const wf = new WorkflowBuilder(`batch-${args.label}`).addStep(timeoutSeconds === undefined ? step : step.withTimeout(timeoutSeconds)).build();
  return within(engine.executeWorkflow(wf, ctx), 20_000, `run ${args.label}`);
}

const oneThread = () => new WorkflowEngine({ tools: [probe], pool: { maxThreads: 1 }, logger: quietLogger() });

/** Quick tasks behind a busy one, so they wait and are measured on the thread: the tool earns batching. */
async function warmUp(engine: WorkflowEngine, tools: readonly Tool[] = [probe]): Promise<void> {
  const ledger = newLedger();
  const runs = [probeRun(engine, { ledger, label: 'blocker', spinMs: 50 })];
  for (let i = 0; i < 12; i++) for (const tool of tools) runs.push(probeRun(engine, { ledger, label: `warm${i}` }, undefined, tool));
  for (const result of await Promise.all(runs)) expect(result.status).toBe('completed');
}

/** Starts runs one at a time, each once the previous one waits in the pool's queue, so their order is known. */
async function queueInOrder(engine: WorkflowEngine, runs: (() => Promise<WorkflowResult>)[]): Promise<Promise<WorkflowResult>[]> {
  const started: Promise<WorkflowResult>[] = [];
  for (const run of runs) {
    const waitingBefore = engine.poolStats()!.waiting;
    started.push(run());
    await expect.poll(() => engine.poolStats()!.waiting, { timeout: 5000, interval: 1 }).toBe(waitingBefore + 1);
  }
  return started;
}

/**
 * A 150 ms task holding the only thread, then `runs` queued behind it in order: when it ends, they go
 * to the thread together. Returns the blocker's run and the queued ones.
 */
async function behindBlocker(engine: WorkflowEngine, ledger: string, runs: (() => Promise<WorkflowResult>)[]) {
  const blocker = probeRun(engine, { ledger, label: 'blocker', spinMs: 150 });
  await expect.poll(() => ran(ledger)).toEqual(['blocker']);
  return { blocker, queued: await queueInOrder(engine, runs) };
}

describe('batching fast pool tools', () => {
  it('under a backlog, fast tasks share thread hops, and every run still gets its own result', async () => {
    const engine = oneThread();
    try {
      await warmUp(engine);
      const before = engine.poolStats()!;
      const ledger = newLedger();
      const runs = [probeRun(engine, { ledger, label: 'blocker', spinMs: 50 })];
      for (let i = 0; i < 40; i++) runs.push(probeRun(engine, { ledger, label: `t${i}` }));
      const results = await Promise.all(runs);
      results.forEach((result, i) => {
        expect(result.status).toBe('completed');
        expect((result.steps[0]!.output as { label: string }).label).toBe(i === 0 ? 'blocker' : `t${i - 1}`);
      });
      const after = engine.poolStats()!;
      const batches = after.batches - before.batches;
      const batched = after.batchedTasks - before.batchedTasks;
      // 40 tasks waited: they went in fewer hops than tasks.
      expect(batches).toBeGreaterThan(0);
      expect(batched).toBeGreaterThanOrEqual(30);
      expect(batches).toBeLessThan(batched / 2);
      // Each ran exactly once.
      for (let i = 0; i < 40; i++) expect(count(ledger, `t${i}`)).toBe(1);
      expect(after.inFlight).toBe(0);
      expect(after.completed - before.completed).toBe(41);
    } finally {
      await engine.close();
    }
  });

  it('nothing is batched while a thread is free', async () => {
    const engine = new WorkflowEngine({ tools: [probe], pool: { maxThreads: 2 }, logger: quietLogger() });
    try {
      const ledger = newLedger();
      for (let i = 0; i < 20; i++) expect((await probeRun(engine, { ledger, label: `seq${i}` })).status).toBe('completed');
      expect(engine.poolStats()!.batches).toBe(0);
    } finally {
      await engine.close();
    }
  });

  it('a slow tool is never batched with others, however long its backlog', async () => {
    const engine = new WorkflowEngine({ tools: [probe], pool: { maxThreads: 2 }, logger: quietLogger() });
    try {
      const ledger = newLedger();
      // 3 ms per run is over the 1 ms a batched tool may take: with a backlog, each goes alone.
      const slow = await Promise.all(Array.from({ length: 24 }, (_v, i) => probeRun(engine, { ledger, label: `slow${i}`, spinMs: 3 })));
      for (const result of slow) expect(result.status).toBe('completed');
      const stats = engine.poolStats()!;
      expect(stats.batches).toBe(0);
      expect(stats.batchedTasks).toBe(0);
    } finally {
      await engine.close();
    }
  });

  it('a task cancelled before its turn in a batch is skipped; the thread is not killed', async () => {
    const engine = oneThread();
    try {
      await warmUp(engine);
      const ledger = newLedger();
      // A runs ~400 ms from when the blocker ends; T's 0.3 s timeout fires while A runs, before T's turn.
      const {
        blocker,
        queued: [a, t, c],
      } = await behindBlocker(engine, ledger, [
        () => probeRun(engine, { ledger, label: 'A', spinMs: 400 }),
        () => probeRun(engine, { ledger, label: 'T' }, 0.3),
        () => probeRun(engine, { ledger, label: 'C' }),
      ]);
      const batchesBefore = engine.poolStats()!.batches;
      const [blockerResult, aResult, tResult, cResult] = await Promise.all([blocker, a!, t!, c!]);
      expect(engine.poolStats()!.batches).toBe(batchesBefore + 1);
      expect(blockerResult.status).toBe('completed');
      expect(aResult.status).toBe('completed');
      expect(tResult.steps[0]!.error?.code).toBe(ErrorCode.TIMEOUT);
      expect(cResult.status).toBe('completed');
      expect(ran(ledger)).toEqual(['blocker', 'A', 'C']);
      const thread = (r: WorkflowResult) => (r.steps[0]!.output as { thread: number }).thread;
      expect(thread(aResult)).toBe(thread(blockerResult));
      expect(thread(cResult)).toBe(thread(blockerResult));
    } finally {
      await engine.close();
    }
  });

  it('a task cancelled during its turn kills the thread; the others run again alone (a finished one runs twice)', async () => {
    const engine = oneThread();
    try {
      await warmUp(engine);
      const ledger = newLedger();
      const {
        blocker,
        queued: [x, y, z],
      } = await behindBlocker(engine, ledger, [
        () => probeRun(engine, { ledger, label: 'X' }),
        // Spins far past its 0.4 s timeout: only killing the thread stops it.
        () => probeRun(engine, { ledger, label: 'Y', spinMs: 30_000 }, 0.4),
        () => probeRun(engine, { ledger, label: 'Z' }),
      ]);
      const [blockerResult, xResult, yResult, zResult] = await Promise.all([blocker, x!, y!, z!]);
      expect(blockerResult.status).toBe('completed');
      expect(yResult.steps[0]!.error?.code).toBe(ErrorCode.TIMEOUT);
      expect(xResult.status).toBe('completed');
      expect(zResult.status).toBe('completed');
      expect(count(ledger, 'Y')).toBe(1);
      // X had finished when the thread was killed (its result was lost with it): it ran again. Z had not started.
      expect(count(ledger, 'X')).toBe(2);
      expect(count(ledger, 'Z')).toBe(1);
      expect((await probeRun(engine, { ledger, label: 'after' })).status).toBe('completed');
    } finally {
      await engine.close();
    }
  });

  it('a task that ends its thread in a batch fails alone with WORKER_CRASHED; the others complete', async () => {
    const engine = oneThread();
    try {
      await warmUp(engine);
      const ledger = newLedger();
      const {
        blocker,
        queued: [p, e, q],
      } = await behindBlocker(engine, ledger, [
        () => probeRun(engine, { ledger, label: 'P' }),
        () => probeRun(engine, { ledger, label: 'E', exit: true }),
        () => probeRun(engine, { ledger, label: 'Q' }),
      ]);
      const [blockerResult, pResult, eResult, qResult] = await Promise.all([blocker, p!, e!, q!]);
      expect(blockerResult.status).toBe('completed');
      expect(eResult.steps[0]!.error?.code).toBe(ErrorCode.WORKER_CRASHED);
      expect(pResult.status).toBe('completed');
      expect(qResult.status).toBe('completed');
      expect(count(ledger, 'E')).toBe(1);
      expect(count(ledger, 'P')).toBe(2);
      expect(count(ledger, 'Q')).toBe(1);
    } finally {
      await engine.close();
    }
  });

  it('a tool killed by its timeout inside a batch is no longer batched: the next time it runs alone', async () => {
    const engine = new WorkflowEngine({ tools: [probe, twin], pool: { maxThreads: 1 }, logger: quietLogger() });
    try {
      await warmUp(engine, [probe, twin]);
      for (const round of [1, 2]) {
        // On the replacement thread, X's tool runs fast again; Y's tool gets no chance to.
        if (round === 2) await warmUp(engine, [probe]);
        const ledger = newLedger();
        const {
          blocker,
          queued: [x, y, z],
        } = await behindBlocker(engine, ledger, [
          () => probeRun(engine, { ledger, label: 'X' }),
          () => probeRun(engine, { ledger, label: 'Y', spinMs: 30_000 }, 0.4, twin),
          () => probeRun(engine, { ledger, label: 'Z' }),
        ]);
        const [, xResult, yResult, zResult] = await Promise.all([blocker, x!, y!, z!]);
        expect(yResult.steps[0]!.error?.code).toBe(ErrorCode.TIMEOUT);
        expect([xResult.status, zResult.status]).toEqual(['completed', 'completed']);
        // Round 1: Y was batched between X and Z, so X, finished when Y's kill took the thread, ran again.
        // Round 2: Y's tool lost its place in batches; X and Z went together, Y alone, and X ran once.
        expect(count(ledger, 'X'), `round ${round}`).toBe(round === 1 ? 2 : 1);
        expect(count(ledger, 'Z'), `round ${round}`).toBe(1);
      }
    } finally {
      await engine.close();
    }
  });

  it('under many cancellations racing the thread, a task that was not cancelled always gets its own result', async () => {
    const engine = new WorkflowEngine({ tools: [spinUs], pool: { maxThreads: 1 }, logger: quietLogger() });
    const run = (us: number, signal?: AbortSignal) =>
      engine.executeWorkflow(new WorkflowBuilder('spin').addStep(new ToolStep('spin', spinUs, { spinUs: us })).build(), ctx, signal === undefined ? {} : { signal });
    const busy = (us: number) => {
      const until = performance.now() + us / 1000;
      while (performance.now() < until) {
        // spin the main thread so that cancellations land at varied points of the thread's work
      }
    };
    try {
      await Promise.all([run(20_000), ...Array.from({ length: 12 }, () => run(0))]);
      const wrong: unknown[] = [];
      for (let iteration = 0; iteration < 60; iteration++) {
        const blocker = run(2_000);
        const controllers = Array.from({ length: 16 }, () => new AbortController());
        const runs = controllers.map((c) => run(30, c.signal));
        await blocker;
        busy(Math.random() * 200);
        for (let k = 0; k < 16; k += 2) {
          controllers[k]!.abort();
          busy(10 + Math.random() * 40);
        }
        const results = await Promise.all(runs);
        results.forEach((result, k) => {
          if (k % 2 === 1 && result.status !== 'completed') wrong.push({ iteration, k, error: result.error });
          if (k % 2 === 0 && !['completed', 'cancelled'].includes(result.status)) wrong.push({ iteration, k, status: result.status, error: result.error });
        });
      }
      expect(wrong).toEqual([]);
      expect(engine.poolStats()!.batchedTasks).toBeGreaterThan(engine.poolStats()!.batches);
      expect(engine.poolStats()!.inFlight).toBe(0);
    } finally {
      await engine.close();
    }
  });

  it('batching: false sends every task alone', async () => {
    const engine = new WorkflowEngine({ tools: [probe], pool: { maxThreads: 1, batching: false }, logger: quietLogger() });
    try {
      const ledger = newLedger();
      const runs = [probeRun(engine, { ledger, label: 'blocker', spinMs: 50 })];
      for (let i = 0; i < 30; i++) runs.push(probeRun(engine, { ledger, label: `t${i}` }));
      for (const result of await Promise.all(runs)) expect(result.status).toBe('completed');
      expect(engine.poolStats()!.batches).toBe(0);
    } finally {
      await engine.close();
    }
  });
});
