/**
 * ListWorkflows, ListRuns, health and reflection on a real coordinator (127.0.0.1:0) with real clients.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  Metadata,
  credentials,
  loadPackageDefinition,
  status,
  type Client,
  type ClientDuplexStream,
  type ServiceClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryRunStore, Tool, WorkflowEngine } from 'jaf-workflows';
import { createCoordinator, type Coordinator } from '../../src/grpc/coordinator.ts';
import { WorkflowServiceClient } from '../../src/grpc/proto.ts';
import { quietLogger } from '../helpers/logging.ts';

type Msg = Record<string, unknown>;
type AnyClient = Client & Record<string, (...args: unknown[]) => unknown>;

const TOKEN = 'lists-token';

const tools = [
  new Tool({ name: 'echo', execute: (args: Record<string, unknown>) => ({ ...args }) }),
  new Tool({
    name: 'fail',
    execute: () => {
      throw Object.assign(new Error('nope'), { code: 'NOPE' });
    },
  }),
];

const WORKFLOW_IDS = ['wf-c', 'wf-a', 'wf-e', 'wf-b', 'wf-d'];
const doc = (id: string, tool = 'echo') => `id: ${id}\nsteps:\n  - id: s\n    tool: ${tool}\n`;

const require = createRequire(import.meta.url);
const REFLECTION_PROTO = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');
const loaderOptions = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };
const reflectionPkg = loadPackageDefinition(loadSync(REFLECTION_PROTO, loaderOptions)) as unknown as {
  grpc: { reflection: { v1: { ServerReflection: ServiceClientConstructor } } };
};
const healthPkg = loadPackageDefinition(loadSync(healthProtoPath, loaderOptions)) as unknown as {
  grpc: { health: { v1: { Health: ServiceClientConstructor } } };
};

let store: MemoryRunStore;
let engine: WorkflowEngine;
let coordinator: Coordinator;
let client: AnyClient;
let healthClient: AnyClient;
let reflectionClient: AnyClient;
let closeStarted = false;

beforeAll(async () => {
  store = new MemoryRunStore();
  engine = new WorkflowEngine({ tools, store, logger: quietLogger() });
  coordinator = await createCoordinator({ engine, store, tools, token: TOKEN, logger: quietLogger() });
  const address = `127.0.0.1:${coordinator.port}`;
  client = new WorkflowServiceClient(address, credentials.createInsecure()) as AnyClient;
  healthClient = new healthPkg.grpc.health.v1.Health(address, credentials.createInsecure()) as AnyClient;
  reflectionClient = new reflectionPkg.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure()) as AnyClient;
});

afterAll(async () => {
  client?.close();
  healthClient?.close();
  reflectionClient?.close();
  await coordinator?.close(1000);
  await engine?.close();
  await store?.close();
});

function authed(): Metadata {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${TOKEN}`);
  return metadata;
}

function call(on: AnyClient, method: string, request: Msg, metadata = new Metadata()): Promise<Msg> {
  return new Promise((resolve, reject) => {
    on[method]!(request, metadata, { deadline: Date.now() + 10_000 }, (error: ServiceError | null, response: Msg) => (error ? reject(error) : resolve(response)));
  });
}

const unary = (method: string, request: Msg) => call(client, method, request, authed());

function failure(promise: Promise<unknown>): Promise<ServiceError> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error as ServiceError,
  );
}

async function waitFinished(runName: string): Promise<Msg> {
  for (let i = 0; i < 200; i++) {
    const run = await unary('getRun', { name: runName });
    if (['RUN_STATUS_COMPLETED', 'RUN_STATUS_FAILED', 'RUN_STATUS_CANCELLED'].includes(run.status as string)) return run;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${runName} did not finish`);
}

async function allRunPages(request: Msg): Promise<{ pages: Msg[][]; runs: Msg[] }> {
  const pages: Msg[][] = [];
  let pageToken = '';
  do {
    const response = await unary('listRuns', { ...request, pageToken });
    pages.push(response.runs as Msg[]);
    pageToken = response.nextPageToken as string;
  } while (pageToken !== '' && pages.length < 50);
  return { pages, runs: pages.flat() };
}

describe('ListWorkflows', () => {
  beforeAll(async () => {
    for (const id of WORKFLOW_IDS) await unary('createWorkflow', { document: doc(id), format: 'DOCUMENT_FORMAT_YAML' });
    // A second version of wf-b: the list shows the latest.
    await unary('createWorkflow', { document: `${doc('wf-b')}description: v2\n`, format: 'DOCUMENT_FORMAT_YAML' });
  });

  it('pages over the workflows sorted by id, latest version each, with no gaps or repeats', async () => {
    const first = await unary('listWorkflows', { pageSize: 2 });
    const second = await unary('listWorkflows', { pageSize: 2, pageToken: first.nextPageToken });
    const third = await unary('listWorkflows', { pageSize: 2, pageToken: second.nextPageToken });
    const ids = (page: Msg) => (page.workflows as Msg[]).map((w) => w.workflowId);
    expect(ids(first)).toEqual(['wf-a', 'wf-b']);
    expect(ids(second)).toEqual(['wf-c', 'wf-d']);
    expect(ids(third)).toEqual(['wf-e']);
    expect(first.nextPageToken).not.toBe('');
    expect(second.nextPageToken).not.toBe('');
    expect(third.nextPageToken).toBe('');
    expect((first.workflows as Msg[])[1]).toMatchObject({ name: 'workflows/wf-b', description: 'v2' });
    const all = await unary('listWorkflows', {});
    expect(ids(all)).toEqual(['wf-a', 'wf-b', 'wf-c', 'wf-d', 'wf-e']);
    expect(all.nextPageToken).toBe('');
  });

  it('rejects bad page sizes and page tokens with INVALID_ARGUMENT naming the field', async () => {
    for (const pageSize of [1001, -1]) {
      const error = await failure(unary('listWorkflows', { pageSize }));
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toMatch(/page_size/);
      expect(error.details).toMatch(/1000/);
    }
    expect((await unary('listWorkflows', { pageSize: 1000 })).workflows).toHaveLength(5);
    for (const pageToken of ['not a token!', 'Zm9v', Buffer.from(JSON.stringify({ k: 'runs', createdAt: 1, runId: 'x' })).toString('base64url')]) {
      const error = await failure(unary('listWorkflows', { pageToken }));
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toMatch(/page_token/);
    }
  });
});

describe('ListRuns', () => {
  const completedRuns: string[] = [];
  const failedRuns: string[] = [];

  beforeAll(async () => {
    await unary('createWorkflow', { document: doc('ok-flow'), format: 'DOCUMENT_FORMAT_YAML' });
    await unary('createWorkflow', { document: doc('bad-flow', 'fail'), format: 'DOCUMENT_FORMAT_YAML' });
    for (let i = 0; i < 3; i++) {
      const run = await unary('startRun', { workflow: 'workflows/ok-flow' });
      completedRuns.push((await waitFinished(run.name as string)).runId as string);
    }
    for (let i = 0; i < 2; i++) {
      const run = await unary('startRun', { workflow: 'workflows/bad-flow' });
      failedRuns.push((await waitFinished(run.name as string)).runId as string);
    }
  });

  it('lists runs newest first, paged with opaque tokens, without step results', async () => {
    const { pages, runs } = await allRunPages({ pageSize: 2 });
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    const ids = runs.map((r) => r.runId as string);
    expect(new Set(ids).size).toBe(5);
    expect([...ids].sort()).toEqual([...completedRuns, ...failedRuns].sort());
    const times = runs.map((r) => Number((r.createTime as { seconds: string }).seconds) * 1000 + (r.createTime as { nanos: number }).nanos / 1e6);
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(runs.every((r) => (r.stepResults as unknown[]).length === 0)).toBe(true);
  });

  it('shows each run as GetRun does, less its step results, from its first and last events only', async () => {
    const readEvents = store.readEvents.bind(store);
    let fullReads = 0;
    store.readEvents = (...args) => {
      fullReads += 1;
      return readEvents(...args);
    };
    try {
      const { runs } = await allRunPages({ pageSize: 3 });
      expect(fullReads).toBe(0);
      for (const listed of runs) {
        const full = await unary('getRun', { name: listed.name as string });
        expect((full.stepResults as unknown[]).length).toBeGreaterThan(0);
        expect(listed).toEqual({ ...full, stepResults: [] });
      }
      expect(runs.some((r) => r.status === 'RUN_STATUS_FAILED' && (r.error as { code: string }).code === 'NOPE' && r.errorStepPath === 's')).toBe(true);
    } finally {
      store.readEvents = readEvents;
    }
  });

  it('filters by status and by workflow', async () => {
    const failed = await allRunPages({ status: 'RUN_STATUS_FAILED', pageSize: 1 });
    expect(failed.pages).toHaveLength(2);
    expect(failed.runs.map((r) => r.runId).sort()).toEqual([...failedRuns].sort());
    expect(failed.runs.every((r) => r.status === 'RUN_STATUS_FAILED' && r.workflow === 'workflows/bad-flow')).toBe(true);

    const ok = await allRunPages({ workflow: 'workflows/ok-flow', pageSize: 2 });
    expect(ok.runs.map((r) => r.runId).sort()).toEqual([...completedRuns].sort());
    expect(ok.runs.every((r) => r.status === 'RUN_STATUS_COMPLETED')).toBe(true);

    const none = await unary('listRuns', { workflow: 'workflows/ok-flow', status: 'RUN_STATUS_FAILED' });
    expect(none).toMatchObject({ runs: [], nextPageToken: '' });
  });

  it('rejects malformed page tokens, bad page sizes and bad workflow names with INVALID_ARGUMENT', async () => {
    const workflowsToken = (await unary('listWorkflows', { pageSize: 1 })).nextPageToken as string;
    for (const pageToken of ['%%%', 'e30', workflowsToken, Buffer.from(JSON.stringify({ k: 'runs', createdAt: 'x', runId: 1 })).toString('base64url')]) {
      const error = await failure(unary('listRuns', { pageToken }));
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toMatch(/page_token/);
    }
    const size = await failure(unary('listRuns', { pageSize: 5000 }));
    expect(size.code).toBe(status.INVALID_ARGUMENT);
    expect(size.details).toMatch(/page_size.*1000/);
    expect((await failure(unary('listRuns', { workflow: 'ok-flow' }))).code).toBe(status.INVALID_ARGUMENT);
  });

  it('still needs the token', async () => {
    expect((await failure(call(client, 'listRuns', {}))).code).toBe(status.UNAUTHENTICATED);
  });
});

describe('reflection', () => {
  it('lists the workflow service and health without a token', async () => {
    const names = await new Promise<string[]>((resolve, reject) => {
      const stream = reflectionClient.serverReflectionInfo!({ deadline: Date.now() + 10_000 }) as ClientDuplexStream<Msg, Msg>;
      stream.on('data', (response: Msg) => {
        const list = response.listServicesResponse as { service: { name: string }[] } | null;
        if (list === null || list === undefined) reject(new Error(`unexpected reflection response ${JSON.stringify(response)}`));
        else resolve(list.service.map((s) => s.name));
        stream.end();
      });
      stream.on('error', reject);
      stream.write({ listServices: '' });
    });
    expect(names).toEqual(expect.arrayContaining(['jaf.workflows.v1.WorkflowService', 'grpc.health.v1.Health']));
  });
});

describe('health', () => {
  it('is SERVING for the server and the service without a token, NOT_SERVING once close begins', async () => {
    expect(closeStarted).toBe(false);
    expect(await call(healthClient, 'check', { service: '' })).toMatchObject({ status: 'SERVING' });
    expect(await call(healthClient, 'check', { service: 'jaf.workflows.v1.WorkflowService' })).toMatchObject({ status: 'SERVING' });
    expect((await failure(call(healthClient, 'check', { service: 'no.such.Service' }))).code).toBe(status.NOT_FOUND);

    // The open Watch stream keeps the server draining (tryShutdown) after close() begins.
    const watch = healthClient.watch!({ service: '' }, { deadline: Date.now() + 10_000 }) as NodeJS.EventEmitter & { cancel(): void };
    const statuses: string[] = [];
    const sawNotServing = new Promise<void>((resolve) => {
      watch.on('data', (response: Msg) => {
        statuses.push(response.status as string);
        if (response.status === 'NOT_SERVING') resolve();
      });
    });
    watch.on('error', () => {});
    await new Promise<void>((resolve) => {
      const check = () => (statuses.length > 0 ? resolve() : setTimeout(check, 5));
      check();
    });
    closeStarted = true;
    const closing = coordinator.close(1000);
    await sawNotServing;
    expect(statuses).toEqual(['SERVING', 'NOT_SERVING']);
    watch.cancel();
    await closing;
  });
});
