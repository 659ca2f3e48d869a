/**
 * Review regressions for run-launcher.ts over a real coordinator, engine and MemoryRunStore:
 * request_id retries that name a run_id, and concurrent starts of the same client-chosen run_id.
 */
import { credentials, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryRunStore, Tool, WorkflowEngine } from 'jaf-workflows';
import { createCoordinator, type Coordinator } from '../../src/grpc/coordinator.ts';
import { toProtoStruct, WorkflowServiceClient } from '../../src/grpc/proto.ts';
import { ERROR_CODE_METADATA_KEY } from '../../src/grpc/status.ts';
import { callUnary, collectStream, expectFailure, type AnyClient, type Msg } from '../helpers/grpc.ts';
import { quietLogger } from '../helpers/logging.ts';

const tools = [
  new Tool({ name: 'echo', execute: (args: Record<string, unknown>) => ({ ...args }) }),
  new Tool({
    name: 'block',
    execute: (_args: Record<string, unknown>, ctx) =>
      new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason ?? new Error('aborted')), { once: true });
      }),
  }),
];

const ECHO = 'id: echo\nsteps:\n  - id: a\n    tool: echo\n    args:\n      n: "1"\n';
const BLOCKING = 'id: blocking\nsteps:\n  - id: wait\n    tool: block\n';

let store: MemoryRunStore;
let engine: WorkflowEngine;
let coordinator: Coordinator;
let client: AnyClient;

beforeAll(async () => {
  store = new MemoryRunStore();
  engine = new WorkflowEngine({ tools, store, logger: quietLogger() });
  coordinator = await createCoordinator({ engine, store, tools, logger: quietLogger() });
  client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
  await callUnary(client, 'createWorkflow', { document: ECHO });
  await callUnary(client, 'createWorkflow', { document: BLOCKING });
});

afterAll(async () => {
  client?.close();
  await coordinator?.close(1000);
  await engine?.close();
  await store?.close();
});

async function waitForStatus(runName: string, wanted: string): Promise<Msg> {
  for (let i = 0; i < 500; i++) {
    const run = await callUnary(client, 'getRun', { name: runName });
    if (run.status === wanted) return run;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${runName} never reached ${wanted}`);
}

describe('RunLauncher (review)', () => {
  it('a StartRun retry with the same request_id and run_id returns the same run, not ALREADY_EXISTS', async () => {
    const request = { workflow: 'workflows/echo', requestId: 'rid-with-run-id', runId: 'chosen-run-1', variables: toProtoStruct({ who: 'ada' }) };
    const first = await callUnary(client, 'startRun', request);
    expect(first.runId).toBe('chosen-run-1');
    await waitForStatus('runs/chosen-run-1', 'RUN_STATUS_COMPLETED');
    const retried = await callUnary(client, 'startRun', request);
    expect(retried.runId).toBe('chosen-run-1');
    // The request_id is still held: the same id with other content is refused, not a fresh start.
    const reused = await expectFailure(callUnary(client, 'startRun', { ...request, variables: toProtoStruct({ who: 'bob' }) }));
    expect(reused.metadata.get(ERROR_CODE_METADATA_KEY)).toEqual(['REQUEST_ID_REUSED']);
  });

  it('an ExecuteWorkflow retry with the same request_id and run_id streams the same run', async () => {
    const run = { workflow: 'workflows/echo', requestId: 'rid-exec-run-id', runId: 'chosen-run-2' };
    const first = await collectStream(client, 'executeWorkflow', { run });
    expect(first.error).toBeUndefined();
    const again = await collectStream(client, 'executeWorkflow', { run });
    expect(again.error).toBeUndefined();
    expect(again.messages).toEqual(first.messages);
  });

  it('concurrent StartRuns of one client-chosen run_id: one run, the others ALREADY_EXISTS, the run stays cancellable', async () => {
    const request = { workflow: 'workflows/blocking', runId: 'contended-run' };
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => callUnary(client, 'startRun', request)));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as { code: number }] : []));
    expect(ok).toHaveLength(1);
    expect(failed.map((e) => e.code)).toEqual(failed.map(() => status.ALREADY_EXISTS));
    const cancelled = await callUnary(client, 'cancelRun', { name: 'runs/contended-run' });
    expect(cancelled.name).toBe('runs/contended-run');
    await waitForStatus('runs/contended-run', 'RUN_STATUS_CANCELLED');
  });
});

describe('RunLauncher called directly (review)', () => {
  it('starts of one run_id in the same tick: one launches, the others are RUN_ALREADY_EXISTS, and its controller is kept', async () => {
    const { RunLauncher } = await import('../../src/grpc/run-launcher.ts');
    const { WorkflowCatalog } = await import('../../src/grpc/workflow-catalog.ts');
    const catalog = new WorkflowCatalog({ engine, store, tools, agents: undefined });
    const launcher = new RunLauncher({ engine, store, catalog, logger: quietLogger(), startTimeoutMs: 10_000 });
    const request = { workflow: 'workflows/blocking', runId: 'same-tick-run' };
    const results = await Promise.allSettled([launcher.start(request), launcher.start(request), launcher.start(request)]);
    const launched = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const codes = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as { code?: string }).code] : []));
    expect(launched).toHaveLength(1);
    expect(codes).toEqual(['RUN_ALREADY_EXISTS', 'RUN_ALREADY_EXISTS']);
    // The failed duplicates must not have taken the running run's controller with them.
    const controller = launcher.controller('same-tick-run');
    expect(controller).toBeDefined();
    controller!.abort(new Error('test over'));
    await launched[0]!.execution!.catch(() => {});
  });
});

/** Holds every commit, in order, from the first run_started on until released, as a stalled disk would. */
class SlowStartStore extends MemoryRunStore {
  release: (() => void) | undefined;
  queue: Promise<unknown> | undefined;
  override append(events: Parameters<MemoryRunStore['append']>[0]): Promise<void> {
    if (this.queue === undefined && events.some((e) => e.type === 'run_started')) {
      this.queue = new Promise<void>((resolve) => (this.release = resolve));
    }
    if (this.queue === undefined) return super.append(events);
    const appended = this.queue.then(() => super.append(events));
    this.queue = appended.catch(() => {});
    return appended;
  }
}

/** A coordinator on a SlowStartStore with the echo workflow created; `test` gets the store and a client. */
async function withSlowStart(startTimeoutMs: number, test: (slowStore: SlowStartStore, slowClient: AnyClient) => Promise<void>): Promise<void> {
  const slowStore = new SlowStartStore();
  const slowEngine = new WorkflowEngine({ tools, store: slowStore, logger: quietLogger() });
  const slow = await createCoordinator({ engine: slowEngine, store: slowStore, tools, logger: quietLogger(), startTimeoutMs });
  const slowClient = new WorkflowServiceClient(`127.0.0.1:${slow.port}`, credentials.createInsecure()) as AnyClient;
  try {
    await callUnary(slowClient, 'createWorkflow', { document: ECHO });
    await test(slowStore, slowClient);
  } finally {
    slowClient.close();
    await slow.close(1000);
    await slowEngine.close();
    await slowStore.close();
  }
}

describe('a start that outlives startTimeoutMs (review)', () => {
  it('a retry while that start is still pending waits for it and answers with the run, not NOT_FOUND', async () => {
    await withSlowStart(300, async (slowStore, slowClient) => {
      const request = { workflow: 'workflows/echo', requestId: 'pending-start' };
      const timedOut = await expectFailure(callUnary(slowClient, 'startRun', request));
      expect(timedOut.code).toBe(status.UNAVAILABLE);
      // The first start is still held by the store; the retry arrives, then the store catches up.
      const retry = callUnary(slowClient, 'startRun', request);
      setTimeout(() => slowStore.release!(), 100);
      const retried = await retry;
      expect(retried.name).toBe(`runs/${retried.runId as string}`);
      const runs = (await callUnary(slowClient, 'listRuns', { workflow: 'workflows/echo' })).runs as Msg[];
      expect(runs.map((r) => r.runId)).toEqual([retried.runId]);
    });
  });

  it('the request_id keeps naming the run that started late: a retry returns it instead of starting a second run', async () => {
    await withSlowStart(100, async (slowStore, slowClient) => {
      const request = { workflow: 'workflows/echo', requestId: 'late-start' };
      const timedOut = await expectFailure(callUnary(slowClient, 'startRun', request));
      expect(timedOut.details).toMatch(/did not start within/);
      expect(timedOut.code).toBe(status.UNAVAILABLE);
      slowStore.release!();
      // The run the first call launched goes on and finishes.
      let runs: Msg[] = [];
      for (let i = 0; i < 500 && runs.length === 0; i++) {
        runs = ((await callUnary(slowClient, 'listRuns', { workflow: 'workflows/echo' })).runs as Msg[]).filter((r) => r.status === 'RUN_STATUS_COMPLETED');
        if (runs.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(runs).toHaveLength(1);
      const retried = await callUnary(slowClient, 'startRun', request);
      expect(retried.runId).toBe(runs[0]!.runId);
      expect((await callUnary(slowClient, 'listRuns', { workflow: 'workflows/echo' })).runs as Msg[]).toHaveLength(1);
    });
  });
});

describe('ExecuteWorkflow after_seq (review)', () => {
  it('after_seq equal to the launched run\'s last seq ends the stream OK, as WatchRun does; beyond it is OUT_OF_RANGE', async () => {
    const full = await collectStream(client, 'executeWorkflow', { run: { workflow: 'workflows/echo' } });
    expect(full.error).toBeUndefined();
    const last = Number(full.messages.at(-1)!.seq);
    const atEnd = await collectStream(client, 'executeWorkflow', { run: { workflow: 'workflows/echo' }, afterSeq: String(last) });
    expect(atEnd).toEqual({ messages: [] });
    const beyond = await collectStream(client, 'executeWorkflow', { run: { workflow: 'workflows/echo' }, afterSeq: String(last + 1) });
    expect(beyond.error?.code).toBe(status.OUT_OF_RANGE);
  });
});

describe('request_id with a run_id across a restart (review)', () => {
  it('a restarted coordinator answers the retry with the same run, and still refuses the run_id to another request', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { SqliteRunStore } = await import('../../src/store/sqlite-store.ts');
    const dir = mkdtempSync(join(tmpdir(), 'jaf-review-restart-'));
    const open = async () => {
      const sqlite = SqliteRunStore.open({ path: join(dir, 'c.db') });
      const eng = new WorkflowEngine({ tools, store: sqlite, logger: quietLogger() });
      const coord = await createCoordinator({ engine: eng, store: sqlite, tools, logger: quietLogger() });
      const cl = new WorkflowServiceClient(`127.0.0.1:${coord.port}`, credentials.createInsecure()) as AnyClient;
      return {
        client: cl,
        stop: async () => {
          cl.close();
          await coord.close(500);
          await eng.close();
          await sqlite.close();
        },
      };
    };
    try {
      const request = { workflow: 'workflows/echo', requestId: 'restart-rid', runId: 'restart-run' };
      const first = await open();
      try {
        await callUnary(first.client, 'createWorkflow', { document: ECHO });
        const events = await collectStream(first.client, 'executeWorkflow', { run: request });
        expect(events.error).toBeUndefined();
      } finally {
        await first.stop();
      }
      const second = await open();
      try {
        expect((await callUnary(second.client, 'startRun', request)).runId).toBe('restart-run');
        const other = await expectFailure(callUnary(second.client, 'startRun', { ...request, requestId: 'another-rid' }));
        expect(other.code).toBe(status.ALREADY_EXISTS);
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ExecuteWorkflow at close (review)', () => {
  it('an ExecuteWorkflow stream open at close ends with UNAVAILABLE at once; the run goes on', async () => {
    const other = await createCoordinator({ engine, store, tools, logger: quietLogger() });
    const otherClient = new WorkflowServiceClient(`127.0.0.1:${other.port}`, credentials.createInsecure()) as AnyClient;
    try {
      const call = otherClient.executeWorkflow!({ run: { workflow: 'workflows/blocking' } }) as NodeJS.EventEmitter;
      const first = await new Promise<Msg>((resolve) => call.once('data', resolve));
      const ended = new Promise<{ code: number }>((resolve) => call.once('error', resolve));
      const started = Date.now();
      await other.close(10_000);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((await ended).code).toBe(status.UNAVAILABLE);
      const run = await callUnary(client, 'getRun', { name: first.run as string });
      expect(run.status).toBe('RUN_STATUS_RUNNING');
    } finally {
      otherClient.close();
      await other.close(500);
    }
  });
});
