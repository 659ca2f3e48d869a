/**
 * What a coordinator keeps across a restart, on a real SQLite file: the workflows CreateWorkflow
 * accepted (and which version is published), StartRun request_ids, and declarative runs left unfinished,
 * which resume on recovery with no `register` call because their document is in the store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, status } from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { Tool, WorkflowEngine } from 'jaf-workflows';
import { createCoordinator, type Coordinator } from '../../src/grpc/coordinator.ts';
import { toProtoStruct, WorkflowServiceClient } from '../../src/grpc/proto.ts';
import { SqliteRunStore } from '../../src/store/sqlite-store.ts';
import { callUnary, collectStream, expectFailure, type AnyClient, type Msg } from '../helpers/grpc.ts';
import { quietLogger } from '../helpers/logging.ts';

const dir = mkdtempSync(join(tmpdir(), 'jaf-restart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `gate` holds its step until released, so a run can be left unfinished across a restart. */
let releaseGate: (() => void) | undefined;
let gateEntered: (() => void) | undefined;
const gateCalls: string[] = [];

const tools = [
  new Tool({ name: 'echo', execute: (args: Record<string, unknown>) => ({ ...args }) }),
  new Tool({
    name: 'gate',
    execute: (args: { label: string }, ctx) => {
      gateCalls.push(args.label);
      gateEntered?.();
      return new Promise((resolve, reject) => {
        releaseGate = () => resolve({ passed: args.label });
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason ?? new Error('aborted')), { once: true });
      });
    },
  }),
];

const V1 = 'id: greeter\nname: Greeter\nsteps:\n  - id: hello\n    tool: echo\n    args:\n      text: "\'v1 \' + vars.who"\n';
const V2 = 'id: greeter\nname: Greeter\nsteps:\n  - id: hello\n    tool: echo\n    args:\n      text: "\'v2 \' + vars.who"\n';
const GATED = 'id: gated\nsteps:\n  - id: first\n    tool: echo\n    args:\n      n: "1"\n  - id: wait\n    tool: gate\n    args:\n      label: "\'g\'"\n  - id: after\n    tool: echo\n    args:\n      done: "true"\n';

interface Instance {
  readonly store: SqliteRunStore;
  readonly engine: WorkflowEngine;
  readonly coordinator: Coordinator;
  readonly client: AnyClient;
  stop(): Promise<void>;
}

async function start(): Promise<Instance> {
  const store = SqliteRunStore.open({ path: join(dir, 'coordinator.db') });
  const engine = new WorkflowEngine({ tools, store, logger: quietLogger() });
  const coordinator = await createCoordinator({ engine, store, tools, logger: quietLogger() });
  const client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
  return {
    store,
    engine,
    coordinator,
    client,
    stop: async () => {
      client.close();
      await coordinator.close(500);
      await engine.close();
      await store.close();
    },
  };
}

async function waitForRun(client: AnyClient, runName: string, wanted: string): Promise<Msg> {
  for (let i = 0; i < 200; i++) {
    const run = await callUnary(client, 'getRun', { name: runName });
    if (run.status === wanted) return run;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${runName} never reached ${wanted}`);
}

describe('a restarted coordinator', () => {
  it('serves the same workflows, published versions and request_ids; resumes declarative runs', async () => {
    const first = await start();
    const v1 = await callUnary(first.client, 'createWorkflow', { document: V1 });
    const v2 = await callUnary(first.client, 'createWorkflow', { document: V2 });
    // Publishing v1 again makes it the default once more.
    await callUnary(first.client, 'createWorkflow', { document: V1 });
    await callUnary(first.client, 'createWorkflow', { document: GATED });
    const started = await callUnary(first.client, 'startRun', { workflow: 'workflows/greeter', requestId: 'req-greet', variables: toProtoStruct({ who: 'ada' }) });
    await waitForRun(first.client, started.name as string, 'RUN_STATUS_COMPLETED');

    const entered = new Promise<void>((resolve) => (gateEntered = resolve));
    const gated = await callUnary(first.client, 'startRun', { workflow: 'workflows/gated', requestId: 'req-gated' });
    await entered;
    // The process "dies" with the gated run mid-step: nothing more of it is committed.
    await first.coordinator.close(200);
    await first.engine.close();
    first.store.flush();
    await first.store.close();
    first.client.close();

    const second = await start();
    try {
      const described = await callUnary(second.client, 'getWorkflow', { name: 'workflows/greeter' });
      expect(described).toMatchObject({ workflowId: 'greeter', displayName: 'Greeter', definitionHash: v1.definitionHash, totalSteps: 1 });
      expect(described.createTime).toEqual(v1.createTime);
      expect(await callUnary(second.client, 'getWorkflow', { name: 'workflows/greeter', definitionHash: v2.definitionHash })).toMatchObject({
        definitionHash: v2.definitionHash,
      });
      const listed = await callUnary(second.client, 'listWorkflows', {});
      expect((listed.workflows as Msg[]).map((w) => w.workflowId)).toEqual(['gated', 'greeter']);

      // The same request_id finds the same run; with other content it is refused.
      const again = await callUnary(second.client, 'startRun', { workflow: 'workflows/greeter', requestId: 'req-greet', variables: toProtoStruct({ who: 'ada' }) });
      expect(again.name).toBe(started.name);
      const reused = await expectFailure(
        callUnary(second.client, 'startRun', { workflow: 'workflows/greeter', requestId: 'req-greet', variables: toProtoStruct({ who: 'bob' }) }),
      );
      expect(reused.code).toBe(status.FAILED_PRECONDITION);

      // A run of an older version by hash, after the restart.
      const older = await callUnary(second.client, 'startRun', { workflow: 'workflows/greeter', definitionHash: v2.definitionHash, variables: toProtoStruct({ who: 'bo' }) });
      const olderDone = await waitForRun(second.client, older.name as string, 'RUN_STATUS_COMPLETED');
      expect(JSON.stringify(olderDone)).toContain('v2 bo');

      // Recovery resumes the declarative run without any register(): the gate runs again, `first` does not.
      const reentered = new Promise<void>((resolve) => (gateEntered = resolve));
      const report = await second.engine.recover();
      expect(report.failed).toEqual([]);
      expect(report.resumed.map((r) => `runs/${r.runId}`)).toEqual([gated.name]);
      await reentered;
      releaseGate!();
      const result = await report.resumed[0]!.result;
      expect(result.status).toBe('completed');
      expect(gateCalls).toEqual(['g', 'g']);
      const { messages } = await collectStream(second.client, 'watchRun', { name: gated.name });
      const firstStepRuns = messages.filter((m) => m.event === 'stepStarted' && (m.stepStarted as Msg).path === 'first');
      expect(firstStepRuns).toHaveLength(1);
      expect(messages.at(-1)).toMatchObject({ event: 'runFinished' });
    } finally {
      await second.stop();
    }
  });
});
