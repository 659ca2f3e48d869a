import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import {
  LoopStep,
  ParallelStep,
  Tool,
  ToolStep,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowEngine,
  type RunEvent,
  type Workflow,
} from 'jaf-workflows';
import { MemoryRunStore } from '../../src/store/memory-store.ts';
import type { RunStore } from '../../src/store/run-store.ts';
import { SqliteRunStore } from '../../src/store/sqlite-store.ts';
import { quietLogger } from '../helpers/logging.ts';
import { deferred, waitFor } from '../integration/support.ts';

const dirs: string[] = [];
const tempDb = () => {
  const dir = mkdtempSync(join(tmpdir(), 'jaf-durable-'));
  dirs.push(dir);
  return join(dir, 'runs.db');
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const ctx = () => new WorkflowContext({ workflowId: 'order-1', initialData: { order: 7 }, userContext: { tenant: 't1' } });

/** Tools that count their executions per step path, and can be held at a path to simulate a crash there. */
function ledgerTools() {
  const executions = new Map<string, number[]>();
  const holds = new Map<string, Promise<void>>();
  const work = new Tool({
    name: 'work',
    execute: async (args: { n: number }, tool) => {
      executions.set(tool.stepPath, [...(executions.get(tool.stepPath) ?? []), tool.attempt]);
      await holds.get(tool.stepPath);
      return { [`out_${tool.stepPath.replace(/\W/g, '_')}`]: args.n * 10 };
    },
  });
  return { work, executions, hold: (path: string) => holds.set(path, new Promise<void>(() => {})), release: () => holds.clear() };
}

/**
 * A "crash": the first engine's run is held at a step (its process would have died there); a second
 * engine over the same store recovers. The first engine's run stays parked and never writes again.
 */
async function crashAt(workflow: Workflow, store: RunStore, tools: ReturnType<typeof ledgerTools>, heldPath: string, runId: string) {
  tools.hold(heldPath);
  const first = new WorkflowEngine({ tools: [tools.work], store, logger: quietLogger() });
  void first.executeWorkflow(workflow, ctx(), { runId }).catch(() => {});
  await waitFor(() => tools.executions.has(heldPath), `step ${heldPath} to start`, 5000);
  tools.release();
  return first;
}

describe('durable runs', () => {
  it('stores every event, one final result per step, and the definition the run is pinned to', async () => {
    const path = tempDb();
    const store = SqliteRunStore.open({ path });
    const { work } = ledgerTools();
    const wf = new WorkflowBuilder('stored').addStep(new ToolStep('a', work, { n: 1 })).addStep(new ToolStep('b', work, { n: 2 })).build();
    const engine = new WorkflowEngine({ tools: [work], store, logger: quietLogger() });
    const result = await engine.executeWorkflow(wf, ctx(), { runId: 'r1' });
    expect(result.status).toBe('completed');
    const events = await store.readEvents('r1');
    expect(events.map((e) => e.type)).toEqual(['run_started', 'step_started', 'step_completed', 'step_started', 'step_completed', 'run_completed']);
    expect(events[0]).toMatchObject({ input: { workflowId: 'order-1', initialData: { order: 7 }, userContext: { tenant: 't1' } } });
    await store.close();
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT path FROM step_results JOIN runs USING (run_num) WHERE run_id = ? ORDER BY path').pluck().all('r1')).toEqual(['a', 'b']);
    const run = db.prepare('SELECT * FROM runs WHERE run_id = ?').get('r1') as { status: string; definition_hash: string };
    expect(run.status).toBe('completed');
    expect(db.prepare('SELECT count(*) FROM definitions WHERE hash = ?').pluck().get(run.definition_hash)).toBe(1);
    db.close();
  });

  it('acknowledges a step (to listeners and to the next step) only after its events are stored', async () => {
    const held = deferred();
    let holding = false;
    /** A store that holds the commit of step a's completion until the test lets it go. */
    class GatedStore extends MemoryRunStore {
      override async append(events: readonly RunEvent[]): Promise<void> {
        if (events.some((e) => e.type === 'step_completed' && e.path === 'a')) {
          holding = true;
          await held.promise;
        }
        await super.append(events);
      }
    }
    const store = new GatedStore();
    const { work, executions } = ledgerTools();
    const wf = new WorkflowBuilder('acked').addStep(new ToolStep('a', work, { n: 1 })).addStep(new ToolStep('b', work, { n: 2 })).build();
    const heard: RunEvent['type'][] = [];
    const engine = new WorkflowEngine({ tools: [work], store, logger: quietLogger() });
    const running = engine.executeWorkflow(wf, ctx(), { onEvent: (e) => heard.push(e.type) });
    await waitFor(() => holding, "a's completion to reach the store", 2000);
    await new Promise((r) => setTimeout(r, 30));
    // a ran, but its completion is not stored yet: b must not start, and no listener has heard of it.
    expect(executions.has('a')).toBe(true);
    expect(executions.has('b')).toBe(false);
    expect(heard).toEqual(['run_started', 'step_started']);
    held.resolve();
    const result = await running;
    expect(result.status).toBe('completed');
    expect(heard).toEqual(['run_started', 'step_started', 'step_completed', 'step_started', 'step_completed', 'run_completed']);
  });

  it('recovers a run: recorded steps are not run again, the in-flight step runs again with the same key', async () => {
    const store = new MemoryRunStore();
    const tools = ledgerTools();
    const wf = new WorkflowBuilder('recoverable')
      .addStep(new ToolStep('a', tools.work, { n: 1 }))
      .addStep(new ToolStep('b', tools.work, { n: 2 }))
      .addStep(new ToolStep('c', tools.work, { n: 3 }))
      .build();
    await crashAt(wf, store, tools, 'b', 'r-rec');
    const second = new WorkflowEngine({ tools: [tools.work], store, logger: quietLogger() });
    second.register(wf);
    const report = await second.recover();
    expect(report.resumed.map((r) => r.runId)).toEqual(['r-rec']);
    const result = await report.resumed[0]!.result;
    expect(result.status).toBe('completed');
    expect(Object.fromEntries(tools.executions)).toEqual({ a: [1], b: [1, 2], c: [1] });
    expect(result.context.variables).toMatchObject({ order: 7, out_a: 10, out_b: 20, out_c: 30 });
    expect(result.context.userContext).toEqual({ tenant: 't1' });
    expect(result.steps.map((s) => [s.path, s.attempts])).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', 1],
    ]);
  });

  it('recovers mid-parallel: finished branches are replayed, the running one runs again', async () => {
    const store = new MemoryRunStore();
    const tools = ledgerTools();
    const wf = new WorkflowBuilder('fan')
      .addStep(new ParallelStep('fan').addBranch(new ToolStep('x', tools.work, { n: 1 })).addBranch(new ToolStep('y', tools.work, { n: 2 })).addBranch(new ToolStep('z', tools.work, { n: 3 })))
      .addStep(new ToolStep('after', tools.work, { n: 4 }))
      .build();
    await crashAt(wf, store, tools, 'fan/z', 'r-par');
    await waitFor(async () => (await store.readEvents('r-par')).filter((e) => e.type === 'step_completed').length === 2, 'x and y to be stored', 2000);
    const second = new WorkflowEngine({ tools: [tools.work], store, logger: quietLogger() });
    second.register(wf);
    const result = await (await second.recover()).resumed[0]!.result;
    expect(result.status).toBe('completed');
    expect(Object.fromEntries(tools.executions)).toEqual({ 'fan/x': [1], 'fan/y': [1], 'fan/z': [1, 2], after: [1] });
    expect(result.context.variables).toMatchObject({ out_fan_x: 10, out_fan_y: 20, out_fan_z: 30, out_after: 40 });
  });

  it('recovers mid-loop: finished iterations are replayed, the loop continues at the running one', async () => {
    const store = new MemoryRunStore();
    const tools = ledgerTools();
    const wf = new WorkflowBuilder('loop')
      .addStep(new LoopStep('items', new ToolStep('item', tools.work).withParamsFunction((c) => ({ n: c.loop!.iteration })), (_c, i) => i < 4, 10))
      .build();
    await crashAt(wf, store, tools, 'items[2]/item', 'r-loop');
    const second = new WorkflowEngine({ tools: [tools.work], store, logger: quietLogger() });
    second.register(wf);
    const result = await (await second.recover()).resumed[0]!.result;
    expect(result.status).toBe('completed');
    expect(Object.fromEntries(tools.executions)).toEqual({ 'items[0]/item': [1], 'items[1]/item': [1], 'items[2]/item': [1, 2], 'items[3]/item': [1] });
    expect(result.steps[0]!.output).toEqual([{ out_items_0__item: 0 }, { out_items_1__item: 10 }, { out_items_2__item: 20 }, { out_items_3__item: 30 }]);
  });

  it('finishes a run on the definition version it started with, even after the workflow changed', async () => {
    const store = new MemoryRunStore();
    const tools = ledgerTools();
    const v1 = new WorkflowBuilder('versioned').addStep(new ToolStep('a', tools.work, { n: 1 })).addStep(new ToolStep('b', tools.work, { n: 2 })).build();
    const v2 = new WorkflowBuilder('versioned').addStep(new ToolStep('a', tools.work, { n: 1 })).addStep(new ToolStep('c2', tools.work, { n: 5 })).build();
    await crashAt(v1, store, tools, 'b', 'r-v1');

    const probe = new WorkflowEngine({ tools: [tools.work], logger: quietLogger() });
    expect(probe.register(v2).definitionHash).not.toBe(probe.register(v1).definitionHash);

    const both = new WorkflowEngine({ tools: [tools.work], store, logger: quietLogger() });
    both.register(v2);
    both.register(v1);
    const result = await (await both.recover()).resumed[0]!.result;
    expect(result.steps.map((s) => s.path)).toEqual(['a', 'b']);
    expect(tools.executions.has('c2')).toBe(false);
  });

  it('marks a run failed, never drops it, when its definition version is not registered', async () => {
    const store = new MemoryRunStore();
    const tools = ledgerTools();
    const v1 = new WorkflowBuilder('orphan').addStep(new ToolStep('a', tools.work, { n: 1 })).addStep(new ToolStep('b', tools.work, { n: 2 })).build();
    await crashAt(v1, store, tools, 'b', 'r-orphan');
    const engine = new WorkflowEngine({ tools: [tools.work], store, logger: quietLogger() });
    const report = await engine.recover();
    expect(report.resumed).toEqual([]);
    expect(report.failed).toEqual([expect.objectContaining({ runId: 'r-orphan', workflowId: 'orphan' })]);
    expect(await store.getRun('r-orphan')).toMatchObject({ status: 'failed' });
    const events = await store.readEvents('r-orphan');
    expect(events.at(-1)).toMatchObject({ type: 'run_failed', error: { code: 'DEFINITION_NOT_REGISTERED' } });
    expect((await store.unfinishedRuns()).length).toBe(0);
  });
});

describe('group commit', () => {
  const noop = new Tool({ name: 'noop', execute: () => undefined });
  const chain = (id: string, steps: number): Workflow => {
    const builder = new WorkflowBuilder(id);
    for (let i = 0; i < steps; i++) builder.addStep(new ToolStep(`s${i}`, noop));
    return builder.build();
  };

  /** A fresh SQLite store and an engine on it, closed after `test`. */
  async function withStore(test: (store: SqliteRunStore, engine: WorkflowEngine) => Promise<void>): Promise<void> {
    const store = SqliteRunStore.open({ path: tempDb() });
    const engine = new WorkflowEngine({ tools: [noop], store, logger: quietLogger() });
    try {
      await test(store, engine);
    } finally {
      await engine.close();
      await store.close();
    }
  }

  /** Runs `workflow` alone, counting event-loop turns while it runs. */
  async function turnsDuring(engine: WorkflowEngine, workflow: Workflow, options: { onEvent?: (event: RunEvent) => void } = {}): Promise<number> {
    let running = true;
    let turns = 0;
    const spin = () => {
      turns += 1;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    const result = await engine.executeWorkflow(workflow, ctx(), options);
    running = false;
    expect(result.status).toBe('completed');
    return turns;
  }

  it('a lone run commits once per step; unwatched, at the end of each tick, yet the loop still turns every 17 commits', async () => {
    await withStore(async (store, engine) => {
      const before = store.commits;
      const turns = await turnsDuring(engine, chain('lone', 200));
      // One commit per step: the run's start goes with its first step, its end with its last.
      expect(store.commits - before).toBe(200);
      // At most 16 end-of-tick commits in a row: timers and I/O are not starved.
      expect(turns).toBeGreaterThanOrEqual(Math.floor(200 / 17));
      expect(turns).toBeLessThan(100);
    });
  });

  it('a watched run waits for a loop turn before each commit, so the streams watching it flush in between', async () => {
    await withStore(async (store, engine) => {
      const before = store.commits;
      const seen: number[] = [];
      const turns = await turnsDuring(engine, chain('watched', 200), { onEvent: (event) => seen.push(event.seq) });
      expect(store.commits - before).toBe(200);
      expect(turns).toBeGreaterThanOrEqual(200);
      expect(seen).toEqual(seen.map((_s, i) => i + 1));
    });
  });

  it('runs in flight together share commits', async () => {
    await withStore(async (store, engine) => {
      const before = store.commits;
      const results = await Promise.all(Array.from({ length: 20 }, () => engine.executeWorkflow(chain('together', 10), ctx())));
      expect(results.every((r) => r.status === 'completed')).toBe(true);
      // 200 steps; alone they would take 200 commits.
      expect(store.commits - before).toBeLessThan(40);
    });
  });
});

describe('retention', () => {
  it('prunes runs finished longer ago than the configured age, and keeps the rest', async () => {
    const store = new MemoryRunStore();
    const { work } = ledgerTools();
    const wf = new WorkflowBuilder('kept').addStep(new ToolStep('a', work, { n: 1 })).build();
    const engine = new WorkflowEngine({ tools: [work], store, logger: quietLogger() });
    await engine.executeWorkflow(wf, ctx(), { runId: 'finished' });
    expect(await engine.pruneFinishedRuns(3600)).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(await engine.pruneFinishedRuns(0.01)).toBe(1);
    expect(await store.getRun('finished')).toBeUndefined();
    expect(() => new WorkflowEngine({ retention: { finishedRunMaxAgeSeconds: 0 } })).toThrow(/retention/);
    await engine.close();
  });
});
