/**
 * The contract on the wire: a real grpc-js server on 127.0.0.1:0 with trivial handlers, called by a real
 * grpc-js client built from the same package definition.
 */
import {
  Metadata,
  Server,
  ServerCredentials,
  credentials,
  status,
  type Client,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowDefinitionError } from '../../src/errors.ts';
import {
  WorkflowServiceClient,
  fromProtoStruct,
  fromProtoTimestamp,
  fromProtoValue,
  toProtoStruct,
  toProtoTimestamp,
  toProtoValue,
  workflowServiceDefinition,
  type ProtoStruct,
  type ProtoValue,
} from '../../src/grpc/proto.ts';
import { CoordinatorErrorCode, DEFINITION_ISSUES_METADATA_KEY, ERROR_CODE_METADATA_KEY, toGrpcStatus } from '../../src/grpc/status.ts';

const T0 = 1_764_158_400_000;
const OUTPUT = { orderId: 'o-1', total: 99.5, items: [{ sku: 'a', qty: 2 }], paid: true, note: null };

type AnyRequest = Record<string, unknown>;

const handlers: UntypedServiceImplementation = {
  listTools(_call: ServerUnaryCall<AnyRequest, unknown>, callback: sendUnaryData<unknown>) {
    callback(null, {
      tools: [
        {
          name: 'sha256',
          description: 'Hashes text',
          parametersJsonSchema: toProtoStruct({ type: 'object', required: ['text'], properties: { text: { type: 'string' } } }),
          runsInPool: true,
        },
      ],
      nextPageToken: '',
    });
  },
  getRun(call: ServerUnaryCall<AnyRequest, unknown>, callback: sendUnaryData<unknown>) {
    callback(toGrpcStatus(Object.assign(new Error(`${String(call.request.name)} does not exist`), { code: CoordinatorErrorCode.RUN_NOT_FOUND })));
  },
  watchRun(call: ServerWritableStream<AnyRequest, unknown>) {
    const run = String(call.request.name);
    // int64 arrives as a string (longs: String).
    const afterSeq = Number(call.request.afterSeq);
    const events = [
      {
        seq: 1,
        run,
        time: toProtoTimestamp(T0),
        runStarted: {
          workflow: 'workflows/orders',
          definitionHash: 'abc123',
          displayName: 'Orders',
          totalSteps: 1,
          variables: toProtoStruct({ customer: 'c-9' }),
        },
      },
      {
        seq: 2,
        run,
        time: toProtoTimestamp(T0 + 12.5),
        stepFinished: {
          stepId: 'charge',
          path: 'charge',
          kind: 'STEP_KIND_TOOL',
          status: 'STEP_STATUS_COMPLETED',
          output: toProtoValue(OUTPUT),
          executionTimeMs: 12.25,
          attempts: 2,
          metadata: toProtoStruct({ annotations: { notify: 'ops' } }),
        },
      },
      {
        seq: '3',
        run,
        time: toProtoTimestamp(T0 + 20),
        runFinished: { status: 'RUN_STATUS_FAILED', error: { code: 'TOOL_ERROR', message: 'card declined', retryable: false, details: toProtoStruct({ attempt: 2 }) }, errorStepPath: 'charge' },
      },
    ];
    for (const event of events) if (Number(event.seq) > afterSeq) call.write(event);
    call.end();
  },
  executeWorkflow(call: ServerWritableStream<AnyRequest, unknown>) {
    call.emit('error', toGrpcStatus(new WorkflowDefinitionError([{ path: 'steps/0', code: 'UNKNOWN_TOOL', message: 'no tool nope' }])));
  },
};

let server: Server;
let client: Client & Record<string, (...args: unknown[]) => unknown>;

beforeAll(async () => {
  server = new Server();
  server.addService(workflowServiceDefinition, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  client = new WorkflowServiceClient(`127.0.0.1:${port}`, credentials.createInsecure()) as typeof client;
});

afterAll(() => {
  client?.close();
  server?.forceShutdown();
});

function unary(method: string, request: AnyRequest): Promise<AnyRequest> {
  return new Promise((resolve, reject) => {
    client[method]!(request, { deadline: Date.now() + 5000 }, (error: ServiceError | null, response: AnyRequest) => (error ? reject(error) : resolve(response)));
  });
}

function stream(method: string, request: AnyRequest): Promise<{ messages: AnyRequest[]; error?: ServiceError }> {
  return new Promise((resolve) => {
    const messages: AnyRequest[] = [];
    const call = client[method]!(request, { deadline: Date.now() + 5000 }) as NodeJS.EventEmitter;
    call.on('data', (message: AnyRequest) => messages.push(message));
    call.on('error', (error: ServiceError) => resolve({ messages, error }));
    call.on('end', () => resolve({ messages }));
  });
}

describe('WorkflowService over a real grpc-js server and client', () => {
  it('ListTools: a unary call round-trips a Tool with its JSON Schema Struct', async () => {
    const response = await unary('listTools', { pageSize: 10 });
    expect(response.nextPageToken).toBe('');
    const tools = response.tools as AnyRequest[];
    expect(tools).toHaveLength(1);
    const tool = tools[0]!;
    expect([tool.name, tool.description, tool.runsInPool]).toEqual(['sha256', 'Hashes text', true]);
    expect(fromProtoStruct(tool.parametersJsonSchema as ProtoStruct)).toEqual({
      type: 'object',
      required: ['text'],
      properties: { text: { type: 'string' } },
    });
  });

  it('WatchRun: streams events seq 1..3 with their oneof, outputs and errors intact', async () => {
    const { messages, error } = await stream('watchRun', { name: 'runs/r-1', afterSeq: 0 });
    expect(error).toBeUndefined();
    expect(messages.map((m) => [m.seq, m.event, m.run])).toEqual([
      ['1', 'runStarted', 'runs/r-1'],
      ['2', 'stepFinished', 'runs/r-1'],
      ['3', 'runFinished', 'runs/r-1'],
    ]);
    const [started, finished, done] = messages as [AnyRequest, AnyRequest, AnyRequest];
    expect(fromProtoTimestamp(started.time as never)).toBe(T0);
    expect(fromProtoTimestamp(finished.time as never)).toBe(T0 + 12.5);
    // The members of the oneof that are not set are absent; `event` names the one that is.
    expect([started.stepFinished, started.runFinished]).toEqual([undefined, undefined]);

    const runStarted = started.runStarted as AnyRequest;
    expect(runStarted).toMatchObject({ workflow: 'workflows/orders', definitionHash: 'abc123', displayName: 'Orders', totalSteps: 1 });
    expect(fromProtoStruct(runStarted.variables as ProtoStruct)).toEqual({ customer: 'c-9' });
    // Unset Structs read as null (defaults: true), i.e. absent.
    expect(fromProtoStruct(runStarted.metadata as ProtoStruct | null)).toBeUndefined();

    const result = finished.stepFinished as AnyRequest;
    expect(result).toMatchObject({
      stepId: 'charge',
      path: 'charge',
      kind: 'STEP_KIND_TOOL',
      status: 'STEP_STATUS_COMPLETED',
      executionTimeMs: 12.25,
      attempts: 2,
      error: null,
    });
    expect(fromProtoValue(result.output as ProtoValue)).toEqual(OUTPUT);
    expect(fromProtoStruct(result.metadata as ProtoStruct)).toEqual({ annotations: { notify: 'ops' } });

    const runFinished = done.runFinished as AnyRequest;
    expect(runFinished.status).toBe('RUN_STATUS_FAILED');
    expect(runFinished.errorStepPath).toBe('charge');
    const runError = runFinished.error as AnyRequest;
    expect([runError.code, runError.message, runError.retryable]).toEqual(['TOOL_ERROR', 'card declined', false]);
    expect(fromProtoStruct(runError.details as ProtoStruct)).toEqual({ attempt: 2 });
  });

  it('WatchRun: after_seq is an exclusive cursor (int64 sent as a string)', async () => {
    const { messages } = await stream('watchRun', { name: 'runs/r-1', afterSeq: '2' });
    expect(messages.map((m) => m.seq)).toEqual(['3']);
  });

  it('a unary error carries the mapped status and the engine code in metadata', async () => {
    const error = (await unary('getRun', { name: 'runs/missing' }).catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(status.NOT_FOUND);
    expect(error.details).toBe('runs/missing does not exist');
    expect(error.metadata.get(ERROR_CODE_METADATA_KEY)).toEqual(['RUN_NOT_FOUND']);
  });

  it('a stream error carries the mapped status and the definition issues', async () => {
    const { messages, error } = await stream('executeWorkflow', { run: { workflow: 'workflows/x' } });
    expect(messages).toEqual([]);
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect((error?.metadata as Metadata).get(ERROR_CODE_METADATA_KEY)).toEqual(['INVALID_DEFINITION']);
    const issues = JSON.parse(((error?.metadata as Metadata).get(DEFINITION_ISSUES_METADATA_KEY)[0] as Buffer).toString('utf8')) as unknown;
    expect(issues).toEqual([{ path: 'steps/0', code: 'UNKNOWN_TOOL', message: 'no tool nope' }]);
  });

  it('an RPC without a handler is UNIMPLEMENTED', async () => {
    const error = (await unary('cancelRun', { name: 'runs/r-1' }).catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(status.UNIMPLEMENTED);
  });
});
