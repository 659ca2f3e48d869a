import { describe, expect, it } from 'vitest';
import { Tool, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine, type RunEvent } from 'jaf-workflows';
import { RunEventBus, watchRun } from '../../src/engine/event-bus.ts';
import { MemoryRunStore } from '../../src/store/memory-store.ts';
import { quietLogger } from '../helpers/logging.ts';
import { deferred, waitFor } from '../integration/support.ts';

const ctx = () => new WorkflowContext({ workflowId: 'w' });

function setup(gatePath?: string) {
  const store = new MemoryRunStore();
  const gate = deferred();
  const tool = new Tool({
    name: 'step',
    execute: async (_args, toolCtx) => {
      if (toolCtx.stepPath === gatePath) await gate.promise;
      return { [toolCtx.stepPath]: true };
    },
  });
  const builder = new WorkflowBuilder('watched');
  for (let i = 0; i < 5; i++) builder.addStep(new ToolStep(`s${i}`, tool));
  const engine = new WorkflowEngine({ tools: [tool], store, logger: quietLogger() });
  return { store, engine, workflow: builder.build(), gate };
}

async function collect(events: AsyncIterable<RunEvent>, stopAfterSeq = Infinity): Promise<RunEvent[]> {
  const seen: RunEvent[] = [];
  for await (const event of events) {
    seen.push(event);
    if (event.seq >= stopAfterSeq) break;
  }
  return seen;
}

describe('watchRun', () => {
  it('replays a finished run, and resumes after a seq with no gap and no duplicate', async () => {
    const { store, engine, workflow } = setup();
    await engine.executeWorkflow(workflow, ctx(), { runId: 'done' });
    const all = await collect(engine.watchRun('done'));
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(all.at(-1)?.type).toBe('run_completed');
    const firstPart = await collect(engine.watchRun('done'), 5);
    const rest = await collect(engine.watchRun('done', { afterSeq: firstPart.at(-1)!.seq }));
    expect([...firstPart, ...rest]).toEqual(await store.readEvents('done'));
  });

  it('tails a live run from the store to its end', async () => {
    const { store, engine, workflow, gate } = setup('s2');
    const running = engine.executeWorkflow(workflow, ctx(), { runId: 'live' });
    await waitFor(async () => (await store.readEvents('live')).some((e) => e.type === 'step_started' && e.path === 's2'), 's2 to start');
    const watching = collect(engine.watchRun('live', { afterSeq: 2 }));
    gate.resolve();
    await running;
    const watched = await watching;
    expect(watched.map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 3));
    expect(watched.at(-1)?.type).toBe('run_completed');
  });

  it('ends a watcher that falls behind with WATCH_TOO_SLOW; it resumes from its last seq without a gap', async () => {
    const { store, engine, workflow, gate } = setup('s0');
    const running = engine.executeWorkflow(workflow, ctx(), { runId: 'slow' });
    await waitFor(async () => (await store.readEvents('slow')).length >= 2, 'the run to start');
    const watcher = engine.watchRun('slow', { maxBuffered: 3 });
    const seen: RunEvent[] = [];
    const first = await watcher.next(); // reads the stored events, then waits on live ones
    seen.push(first.value as RunEvent);
    gate.resolve();
    await running; // 10 more events arrive while the watcher does not read
    await expect(collect(watcher).then((rest) => seen.push(...rest))).rejects.toMatchObject({ code: 'WATCH_TOO_SLOW', retryable: true });
    const resumed = await collect(engine.watchRun('slow', { afterSeq: seen.at(-1)!.seq }));
    expect([...seen, ...resumed].map((e) => e.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it('answers RUN_NOT_FOUND for an unknown run, and unsubscribes a watcher that leaves early', async () => {
    const store = new MemoryRunStore();
    const bus = new RunEventBus();
    await expect(collect(watchRun(store, bus, 'nope'))).rejects.toMatchObject({ code: 'RUN_NOT_FOUND' });
    expect(bus.watchers('nope')).toBe(0);
    const live = setup('s1');
    const running = live.engine.executeWorkflow(live.workflow, ctx(), { runId: 'r' });
    await waitFor(async () => (await live.store.readEvents('r')).length >= 2, 'the run to start');
    const early = watchRun(live.store, bus, 'r');
    await early.next();
    expect(bus.watchers('r')).toBe(1);
    await early.return(undefined);
    expect(bus.watchers('r')).toBe(0);
    live.gate.resolve();
    await running;
    expect(() => new WorkflowEngine({ logger: quietLogger() }).watchRun('r')).toThrow(/needs a store/);
  });
});

describe('watchRun with a signal', () => {
  it('ends a watch that is waiting for events as soon as the signal aborts', async () => {
    const store = new MemoryRunStore();
    const bus = new RunEventBus();
    const gate = deferred();
    const tool = new Tool({ name: 'held', execute: async () => (await gate.promise, {}) });
    const engine = new WorkflowEngine({ tools: [tool], store, logger: quietLogger() });
    const running = engine.executeWorkflow(new WorkflowBuilder('held').addStep(new ToolStep('h', tool)).build(), ctx(), { runId: 'idle' });
    await waitFor(async () => (await store.readEvents('idle')).length >= 2, 'the run to start');
    const controller = new AbortController();
    const watching = collect(watchRun(store, bus, 'idle', { signal: controller.signal }));
    await waitFor(() => bus.watchers('idle') === 1, 'the watcher to subscribe');
    controller.abort();
    const seen = await watching;
    expect(seen.map((e) => e.type)).toEqual(['run_started', 'step_started']);
    expect(bus.watchers('idle')).toBe(0);
    gate.resolve();
    await running;
  });
});
