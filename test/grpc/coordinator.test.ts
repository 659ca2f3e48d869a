/**
 * The coordinator end to end: a real grpc-js server (createCoordinator on 127.0.0.1:0) over a real
 * engine and MemoryRunStore, called by a real grpc-js client built from the service definition.
 */
import { Metadata, credentials, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryRunStore, Tool, WorkflowEngine } from 'jaf-workflows';
import { bearerMatches } from '../../src/grpc/auth.ts';
import { createCoordinator, type Coordinator } from '../../src/grpc/coordinator.ts';
import { WorkflowServiceClient, fromProtoStruct, fromProtoValue, toProtoStruct, type ProtoStruct, type ProtoValue } from '../../src/grpc/proto.ts';
import { DEFINITION_ISSUES_METADATA_KEY, ERROR_CODE_METADATA_KEY } from '../../src/grpc/status.ts';
import { quietLogger } from '../helpers/logging.ts';

type Msg = Record<string, unknown>;
type AnyClient = Client & Record<string, (...args: unknown[]) => unknown>;

/** Resolved when the `block` tool has started, per key. */
const blockStarted = new Map<string, () => void>();
const blockReady = (key: string) => new Promise<void>((resolve) => blockStarted.set(key, resolve));

const tools = [
  new Tool({ name: 'echo', description: 'Returns its arguments', execute: (args: Record<string, unknown>) => ({ ...args }) }),
  new Tool({
    name: 'add',
    description: 'Adds two numbers',
    parameters: { type: 'object', required: ['a', 'b'], properties: { a: { type: 'number' }, b: { type: 'number' } } },
    execute: (args: { a: number; b: number }) => ({ sum: args.a + args.b }),
  }),
  new Tool({ name: 'big', execute: (args: { i: number }) => ({ i: args.i, blob: 'x'.repeat(32 * 1024) }) }),
  new Tool({
    name: 'fail',
    execute: () => {
      throw Object.assign(new Error('card declined'), { code: 'CARD_DECLINED' });
    },
  }),
  new Tool({
    name: 'block',
    description: 'Waits until aborted',
    execute: (args: { key: string }, ctx) =>
      new Promise((_resolve, reject) => {
        blockStarted.get(args.key)?.();
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason ?? new Error('aborted')), { once: true });
      }),
  }),
];

const PIPELINE = `
id: pipeline
name: Pipeline
description: echo then add
steps:
  - id: greet
    tool: echo
    args:
      greeting: "'hello ' + vars.who"
      nested: vars.payload
  - id: sum
    tool: add
    args:
      a: vars.x
      b: "2.5"
`;

const BLOCKING = `
id: blocking
steps:
  - id: wait
    tool: block
    args:
      key: vars.key
`;

const FAILING = `
id: failing
steps:
  - id: charge
    tool: fail
`;

const BIG_STEPS = 120;
const BIG = `id: big\nsteps:\n${Array.from({ length: BIG_STEPS }, (_v, i) => `  - id: s${i}\n    tool: big\n    args:\n      i: "${i}"\n`).join('')}`;

const PAYLOAD = { list: [1, 'two', { three: true }], none: null };

let store: MemoryRunStore;
let engine: WorkflowEngine;
let coordinator: Coordinator;
let client: AnyClient;
let secured: Coordinator;
let securedClient: AnyClient;

beforeAll(async () => {
  store = new MemoryRunStore();
  engine = new WorkflowEngine({ tools, store, logger: quietLogger() });
  coordinator = await createCoordinator({ engine, store, tools, logger: quietLogger() });
  client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
  secured = await createCoordinator({ engine, store, tools, token: 's3cret-token', logger: quietLogger() });
  securedClient = new WorkflowServiceClient(`127.0.0.1:${secured.port}`, credentials.createInsecure()) as AnyClient;
});

afterAll(async () => {
  client?.close();
  securedClient?.close();
  await coordinator?.close(1000);
  await secured?.close(1000);
  await engine?.close();
  await store?.close();
});

function unary(method: string, request: Msg, metadata = new Metadata(), on: AnyClient = client): Promise<Msg> {
  return new Promise((resolve, reject) => {
    on[method]!(request, metadata, { deadline: Date.now() + 10_000 }, (error: ServiceError | null, response: Msg) => (error ? reject(error) : resolve(response)));
  });
}

function failure(promise: Promise<unknown>): Promise<ServiceError> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error as ServiceError,
  );
}

function stream(method: string, request: Msg): Promise<{ messages: Msg[]; error?: ServiceError }> {
  return new Promise((resolve) => {
    const messages: Msg[] = [];
    const call = client[method]!(request, { deadline: Date.now() + 10_000 }) as NodeJS.EventEmitter;
    call.on('data', (message: Msg) => messages.push(message));
    call.on('error', (error: ServiceError) => resolve({ messages, error }));
    call.on('end', () => resolve({ messages }));
  });
}

async function register(document: string): Promise<Msg> {
  return unary('createWorkflow', { document, format: 'DOCUMENT_FORMAT_YAML' });
}

function startRequest(extra: Msg = {}): Msg {
  return { workflow: 'workflows/pipeline', variables: toProtoStruct({ who: 'ada', x: 4, payload: PAYLOAD }), ...extra };
}

function expectWellFormed(messages: Msg[]): void {
  expect(messages.map((m) => Number(m.seq))).toEqual(messages.map((_m, i) => i + 1));
  expect(messages[0]!.event).toBe('runStarted');
  expect(messages.at(-1)!.event).toBe('runFinished');
  expect(messages.slice(0, -1).every((m) => m.event !== 'runFinished')).toBe(true);
}

describe('coordinator over a real server, engine and store', () => {
  beforeAll(async () => {
    await register(PIPELINE);
    await register(BLOCKING);
    await register(FAILING);
    await register(BIG);
  });

  it('CreateWorkflow answers the Workflow; the same document again is the same version', async () => {
    const first = await register(PIPELINE);
    expect(first).toMatchObject({ name: 'workflows/pipeline', workflowId: 'pipeline', displayName: 'Pipeline', description: 'echo then add', totalSteps: 2 });
    expect(first.definitionHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(first.document as string)).toMatchObject({ id: 'pipeline' });
    const again = await unary('createWorkflow', { document: JSON.stringify(JSON.parse(first.document as string)), format: 'DOCUMENT_FORMAT_JSON' });
    expect(again.definitionHash).toBe(first.definitionHash);
    expect(again.createTime).toEqual(first.createTime);
    expect(await unary('getWorkflow', { name: 'workflows/pipeline' })).toMatchObject({ definitionHash: first.definitionHash });
  });

  it('StartRun then WatchRun streams the whole run in seq order, outputs intact', async () => {
    const run = await unary('startRun', startRequest());
    expect(run.name).toBe(`runs/${String(run.runId)}`);
    expect(run.workflow).toBe('workflows/pipeline');
    expect(['RUN_STATUS_RUNNING', 'RUN_STATUS_COMPLETED']).toContain(run.status);
    expect(fromProtoStruct(run.variables as ProtoStruct)).toEqual({ who: 'ada', x: 4, payload: PAYLOAD });

    const { messages, error } = await stream('watchRun', { name: run.name, afterSeq: 0 });
    expect(error).toBeUndefined();
    expectWellFormed(messages);
    expect(messages.every((m) => m.run === run.name)).toBe(true);
    const finished = messages.filter((m) => m.event === 'stepFinished').map((m) => m.stepFinished as Msg);
    expect(finished.map((r) => [r.stepId, r.kind, r.status])).toEqual([
      ['greet', 'STEP_KIND_TOOL', 'STEP_STATUS_COMPLETED'],
      ['sum', 'STEP_KIND_TOOL', 'STEP_STATUS_COMPLETED'],
    ]);
    expect(fromProtoValue(finished[0]!.output as ProtoValue)).toEqual({ greeting: 'hello ada', nested: PAYLOAD });
    expect(fromProtoValue(finished[1]!.output as ProtoValue)).toEqual({ sum: 6.5 });
    expect((messages.at(-1)!.runFinished as Msg).status).toBe('RUN_STATUS_COMPLETED');
  });

  it('ExecuteWorkflow streams a whole run in one call', async () => {
    const { messages, error } = await stream('executeWorkflow', { run: startRequest(), afterSeq: 0 });
    expect(error).toBeUndefined();
    expectWellFormed(messages);
    expect((messages[0]!.runStarted as Msg).workflow).toBe('workflows/pipeline');
    expect(messages.filter((m) => m.event === 'stepFinished')).toHaveLength(2);
  });

  it('WatchRun with after_seq resumes with no gap and no duplicate', async () => {
    const { messages: all } = await stream('executeWorkflow', { run: startRequest() });
    const name = all[0]!.run as string;
    const cut = 3;
    const { messages: rest, error } = await stream('watchRun', { name, afterSeq: String(cut) });
    expect(error).toBeUndefined();
    expect(rest.map((m) => m.seq)).toEqual(all.slice(cut).map((m) => m.seq));
    expect([...all.slice(0, cut), ...rest]).toEqual(all);
  });

  it('GetRun returns the run with its step results', async () => {
    const { messages } = await stream('executeWorkflow', { run: startRequest() });
    const name = messages[0]!.run as string;
    const run = await unary('getRun', { name });
    expect(run).toMatchObject({ name, status: 'RUN_STATUS_COMPLETED', totalSteps: 2, lastSeq: String(messages.length), errorStepPath: '' });
    expect(run.finishTime).not.toBeNull();
    const results = run.stepResults as Msg[];
    expect(results.map((r) => [r.path, r.status, r.attempts])).toEqual([
      ['greet', 'STEP_STATUS_COMPLETED', 1],
      ['sum', 'STEP_STATUS_COMPLETED', 1],
    ]);
    expect(fromProtoValue(results[1]!.output as ProtoValue)).toEqual({ sum: 6.5 });
  });

  it('CancelRun ends a run blocked in a tool as cancelled; cancelling again is FAILED_PRECONDITION', async () => {
    const ready = blockReady('c1');
    const run = await unary('startRun', { workflow: 'workflows/blocking', variables: toProtoStruct({ key: 'c1' }) });
    await ready;
    const watching = stream('watchRun', { name: run.name });
    const cancelled = await unary('cancelRun', { name: run.name, reason: 'test' });
    expect(cancelled.name).toBe(run.name);
    const { messages, error } = await watching;
    expect(error).toBeUndefined();
    expectWellFormed(messages);
    expect((messages.at(-1)!.runFinished as Msg).status).toBe('RUN_STATUS_CANCELLED');
    expect((await unary('getRun', { name: run.name })).status).toBe('RUN_STATUS_CANCELLED');
    const again = await failure(unary('cancelRun', { name: run.name }));
    expect(again.code).toBe(status.FAILED_PRECONDITION);
    expect(again.metadata.get(ERROR_CODE_METADATA_KEY)).toEqual(['RUN_ALREADY_FINISHED']);
  });

  it('StartRun with the same request_id returns the same run; with another request, FAILED_PRECONDITION', async () => {
    const first = await unary('startRun', startRequest({ requestId: 'req-1' }));
    const second = await unary('startRun', startRequest({ requestId: 'req-1' }));
    expect(second.runId).toBe(first.runId);
    const reused = await failure(unary('startRun', startRequest({ requestId: 'req-1', variables: toProtoStruct({ who: 'bob', x: 1 }) })));
    expect(reused.code).toBe(status.FAILED_PRECONDITION);
  });

  it('a retried StartRun is the same request whatever order its map fields were encoded in', async () => {
    // Protobuf leaves the order of map entries (Struct fields) to the encoder: a client in another
    // language, or a proxy, may send the same variables in another order.
    const variables = toProtoStruct({ who: 'ada', x: 4, nested: { b: [1, { d: 2, c: 3 }], a: null } });
    const reordered = toProtoStruct({ nested: { a: null, b: [1, { c: 3, d: 2 }] }, x: 4, who: 'ada' });
    const first = await unary('startRun', { workflow: 'workflows/pipeline', requestId: 'req-order', variables });
    const second = await unary('startRun', { workflow: 'workflows/pipeline', requestId: 'req-order', variables: reordered });
    expect(second.runId).toBe(first.runId);
    // A Struct may hold NaN or Infinity (valid doubles), which a run's JSON input cannot: INVALID_ARGUMENT naming
    // the path, with or without a request_id.
    const nested = { structValue: { fields: { list: { listValue: { values: [{ numberValue: 1 }, { numberValue: Number.POSITIVE_INFINITY }] } } } } };
    for (const requestId of ['req-nan', undefined]) {
      const odd = { workflow: 'workflows/pipeline', ...(requestId === undefined ? {} : { requestId }), variables: { fields: { who: { stringValue: 'ada' }, n: nested } } };
      const refused = await failure(unary('startRun', odd));
      expect(refused.code).toBe(status.INVALID_ARGUMENT);
      expect(refused.details).toContain('variables.n.list[1]: Infinity is not a JSON number');
    }
    // Absent and empty metadata are the same to the run, so they are the same request.
    const withEmpty = await unary('startRun', { workflow: 'workflows/pipeline', requestId: 'req-empty', variables, metadata: toProtoStruct({}) });
    expect((await unary('startRun', { workflow: 'workflows/pipeline', requestId: 'req-empty', variables })).runId).toBe(withEmpty.runId);
    // Array order is meaning, not encoding: it still makes another request.
    const swapped = toProtoStruct({ who: 'ada', x: 4, nested: { b: [{ d: 2, c: 3 }, 1], a: null } });
    const reused = await failure(unary('startRun', { workflow: 'workflows/pipeline', requestId: 'req-order', variables: swapped }));
    expect(reused.code).toBe(status.FAILED_PRECONDITION);
  });

  it('StartRun with a client-chosen run_id; the same run_id again is ALREADY_EXISTS', async () => {
    const run = await unary('startRun', startRequest({ runId: 'my-run-1' }));
    expect(run.name).toBe('runs/my-run-1');
    const again = await failure(unary('startRun', startRequest({ runId: 'my-run-1' })));
    expect(again.code).toBe(status.ALREADY_EXISTS);
  });

  it('unknown workflows and runs are NOT_FOUND; bad names INVALID_ARGUMENT', async () => {
    const workflow = await failure(unary('startRun', { workflow: 'workflows/nope' }));
    expect(workflow.code).toBe(status.NOT_FOUND);
    expect(workflow.metadata.get(ERROR_CODE_METADATA_KEY)).toEqual(['WORKFLOW_NOT_FOUND']);
    expect((await failure(unary('getRun', { name: 'runs/nope' }))).code).toBe(status.NOT_FOUND);
    expect((await failure(unary('cancelRun', { name: 'runs/nope' }))).code).toBe(status.NOT_FOUND);
    expect((await stream('watchRun', { name: 'runs/nope' })).error?.code).toBe(status.NOT_FOUND);
    expect((await stream('executeWorkflow', { run: { workflow: 'workflows/nope' } })).error?.code).toBe(status.NOT_FOUND);
    expect((await failure(unary('getRun', { name: 'nope' }))).code).toBe(status.INVALID_ARGUMENT);
  });

  it('a malformed document is INVALID_ARGUMENT with the issue path in metadata', async () => {
    const error = await failure(register('id: broken\nsteps:\n  - id: a\n    tool: no_such_tool\n'));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.metadata.get(ERROR_CODE_METADATA_KEY)).toEqual(['INVALID_DEFINITION']);
    const issues = JSON.parse((error.metadata.get(DEFINITION_ISSUES_METADATA_KEY)[0] as Buffer).toString('utf8')) as { path: string }[];
    expect(issues.map((issue) => issue.path)).toContain('/steps/0/tool');
    const yaml = await failure(register('id: [unclosed\n'));
    expect(yaml.code).toBe(status.INVALID_ARGUMENT);
  });

  it('a failing step is run state: RunFinished and GetRun carry the error, the call is OK', async () => {
    const { messages, error } = await stream('executeWorkflow', { run: { workflow: 'workflows/failing' } });
    expect(error).toBeUndefined();
    expectWellFormed(messages);
    const done = messages.at(-1)!.runFinished as Msg;
    expect(done.status).toBe('RUN_STATUS_FAILED');
    expect(done.errorStepPath).toBe('charge');
    expect((done.error as Msg).message).toContain('card declined');
    const run = await unary('getRun', { name: messages[0]!.run });
    expect(run).toMatchObject({ status: 'RUN_STATUS_FAILED', errorStepPath: 'charge' });
    expect((run.stepResults as Msg[]).map((r) => r.status)).toEqual(['STEP_STATUS_FAILED']);
  });

  it('WatchRun of a finished run: after_seq = last_seq ends at once, beyond it is OUT_OF_RANGE', async () => {
    const { messages } = await stream('executeWorkflow', { run: startRequest() });
    const name = messages[0]!.run as string;
    const last = Number(messages.at(-1)!.seq);
    const atEnd = await stream('watchRun', { name, afterSeq: last });
    expect(atEnd).toEqual({ messages: [] });
    expect((await stream('watchRun', { name, afterSeq: last + 1 })).error?.code).toBe(status.OUT_OF_RANGE);
  });

  it('CreateWorkflow with validate_only registers nothing', async () => {
    const checked = await unary('createWorkflow', { document: 'id: dry\nsteps:\n  - id: a\n    tool: echo\n', validateOnly: true });
    expect(checked).toMatchObject({ name: 'workflows/dry', createTime: null });
    expect((await failure(unary('getWorkflow', { name: 'workflows/dry' }))).code).toBe(status.NOT_FOUND);
  });

  it('a client cancelling its watch leaves the run and the server unharmed', async () => {
    const ready = blockReady('c2');
    const run = await unary('startRun', { workflow: 'workflows/blocking', variables: toProtoStruct({ key: 'c2' }) });
    await ready;
    const call = client.watchRun!({ name: run.name }) as NodeJS.EventEmitter & { cancel(): void };
    const first = await new Promise<Msg>((resolve) => call.once('data', resolve));
    expect(first.event).toBe('runStarted');
    const ended = new Promise<ServiceError>((resolve) => call.once('error', resolve));
    call.cancel();
    expect((await ended).code).toBe(status.CANCELLED);
    await unary('cancelRun', { name: run.name });
    const { messages } = await stream('watchRun', { name: run.name });
    expect((messages.at(-1)!.runFinished as Msg).status).toBe('RUN_STATUS_CANCELLED');
  });

  it('close() ends open watch streams with UNAVAILABLE at once', async () => {
    const other = await createCoordinator({ engine, store, tools, logger: quietLogger() });
    const otherClient = new WorkflowServiceClient(`127.0.0.1:${other.port}`, credentials.createInsecure()) as AnyClient;
    try {
      const ready = blockReady('c3');
      const run = await unary('startRun', { workflow: 'workflows/blocking', variables: toProtoStruct({ key: 'c3' }) });
      await ready;
      const call = otherClient.watchRun!({ name: run.name }) as NodeJS.EventEmitter;
      await new Promise((resolve) => call.once('data', resolve));
      const ended = new Promise<ServiceError>((resolve) => call.once('error', resolve));
      const started = Date.now();
      await other.close(3000);
      expect(Date.now() - started).toBeLessThan(2500);
      const error = await ended;
      expect(error.code).toBe(status.UNAVAILABLE);
      await unary('cancelRun', { name: run.name });
    } finally {
      otherClient.close();
      await other.close();
    }
  });

  it('a slow reader (paused client, flow control) still gets every event once, in order', async () => {
    const run = await unary('startRun', { workflow: 'workflows/big' });
    // Let the run finish so the whole history is written at once, faster than the paused client reads.
    const { messages: direct } = await stream('watchRun', { name: run.name });
    expect(direct).toHaveLength(2 + 2 * BIG_STEPS);
    const messages: Msg[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.watchRun!({ name: run.name }) as NodeJS.EventEmitter & { pause(): void; resume(): void };
      call.pause();
      setTimeout(() => call.resume(), 300);
      call.on('data', (message: Msg) => messages.push(message));
      call.on('error', reject);
      call.on('end', resolve);
    });
    expectWellFormed(messages);
    expect(messages).toHaveLength(2 + 2 * BIG_STEPS);
    const outputs = messages.filter((m) => m.event === 'stepFinished').map((m) => (fromProtoValue((m.stepFinished as Msg).output as ProtoValue) as { i: number }).i);
    expect(outputs).toEqual(Array.from({ length: BIG_STEPS }, (_v, i) => i));
  });

  it('ListTools lists the tools by name with their schemas', async () => {
    const response = await unary('listTools', {});
    const listed = response.tools as Msg[];
    expect(listed.map((t) => [t.name, t.runsInPool])).toEqual([
      ['add', false],
      ['big', false],
      ['block', false],
      ['echo', false],
      ['fail', false],
    ]);
    expect(fromProtoStruct(listed[0]!.parametersJsonSchema as ProtoStruct)).toMatchObject({ required: ['a', 'b'] });
  });
});

describe('bearer-token auth', () => {
  it('without the token (or with a wrong one) calls are UNAUTHENTICATED; with it, OK', async () => {
    const none = await failure(unary('listTools', {}, new Metadata(), securedClient));
    expect(none.code).toBe(status.UNAUTHENTICATED);
    const wrong = new Metadata();
    wrong.set('authorization', 'Bearer nope');
    expect((await failure(unary('listTools', {}, wrong, securedClient))).code).toBe(status.UNAUTHENTICATED);
    const right = new Metadata();
    right.set('authorization', 'Bearer s3cret-token');
    const response = await unary('listTools', {}, right, securedClient);
    expect((response.tools as Msg[]).length).toBe(5);
  });

  it('bearerMatches compares the token exactly', () => {
    expect(bearerMatches('Bearer abc', 'abc')).toBe(true);
    expect(bearerMatches('bearer abc', 'abc')).toBe(true);
    expect(bearerMatches('Bearer abcd', 'abc')).toBe(false);
    expect(bearerMatches('abc', 'abc')).toBe(false);
    expect(bearerMatches(undefined, 'abc')).toBe(false);
  });
});
