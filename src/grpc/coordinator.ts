/**
 * The coordinator: a grpc-js server for WorkflowService over a WorkflowEngine and its RunStore.
 *
 * Every RPC of WorkflowService, plus grpc.health.v1.Health (grpc-health-check: SERVING once bound,
 * NOT_SERVING from the start of close()) and server reflection (@grpc/reflection, listing both
 * services). Workflows and request_id idempotency live in memory (lost on restart); runs live in the
 * store. List page tokens are opaque: base64url of a JSON cursor.
 *
 * Every handler ends a failed call through toGrpcStatus, never by letting an error escape.
 */
import { once } from 'node:events';
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Agent } from '../agents/agent.ts';
import { WorkflowContext } from '../context.ts';
import { parseWorkflowDocument } from '../definition/declarative/index.ts';
import type { Workflow } from '../definition/workflow.ts';
import type { WorkflowEngine, Named } from '../engine/engine.ts';
import type { RunEvent, RunStatus } from '../engine/events.ts';
import { isFinished, type RunStore } from '../store/run-store.ts';
import type { Tool } from '../tools/tool.ts';
import type { WorkflowLogger } from '../observability/workflow-logger.ts';
import { bearerTokenInterceptor } from './auth.ts';
import { isTerminalEvent, runEventToProto, runToProto, toolToProto, workflowName, type Message } from './mapping.ts';
import { WORKFLOW_SERVICE_NAME, reflectionPackageDefinition, toProtoTimestamp, workflowServiceDefinition } from './proto.ts';
import {
  afterSeqOf,
  CoordinatorError,
  decodePageToken,
  encodePageToken,
  jsonObject,
  pageSizeOf,
  resourceId,
  RUN_ID_PATTERN,
  RUN_STATUSES,
  toList,
  type AnyRequest,
} from './requests.ts';
import { CoordinatorErrorCode, toGrpcStatus } from './status.ts';

export interface CoordinatorOptions {
  readonly engine: WorkflowEngine;
  /** The engine's store (the same one given to `new WorkflowEngine({ store })`). */
  readonly store: RunStore;
  /** The engine's tools: what ListTools reports and what documents are checked against. */
  readonly tools?: Named<Tool>;
  /** The engine's agents: what documents are checked against (else the engine checks at registration). */
  readonly agents?: Named<Agent>;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0: any free port (see `port` on the result). */
  readonly port?: number;
  /** When set, every call (but health checks) needs `authorization: Bearer <token>`. */
  readonly token?: string;
  /** For failures of runs started here (their rejections are otherwise swallowed). */
  readonly logger?: WorkflowLogger;
  /** How long StartRun waits for the run_started event to be stored, in ms (default 30,000). */
  readonly startTimeoutMs?: number;
}

export interface Coordinator {
  readonly port: number;
  /**
   * Stops accepting calls, ends open watch streams with UNAVAILABLE (clients resume with after_seq)
   * and shuts the server down, forcibly after `graceMs` (default 5000). Runs keep running in the
   * engine; the engine and store are the caller's to close.
   */
  close(graceMs?: number): Promise<void>;
}

interface WorkflowVersion {
  readonly workflow: Workflow;
  readonly message: Message;
}

interface WorkflowEntry {
  latest: string;
  readonly versions: Map<string, WorkflowVersion>;
}

interface RequestEntry {
  readonly fingerprint: string;
  readonly runId: Promise<string>;
}

export async function createCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  const { engine, store } = options;
  const tools = toList(options.tools);
  const agents = options.agents === undefined ? undefined : toList(options.agents);
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const workflows = new Map<string, WorkflowEntry>();
  const requests = new Map<string, RequestEntry>();
  /** Runs started here and not settled yet: their AbortController, for CancelRun. */
  const active = new Map<string, AbortController>();
  /** Open WatchRun/ExecuteWorkflow streams, ended on close. */
  const streams = new Set<ServerWritableStream<AnyRequest, unknown>>();
  let closing = false;

  const logError = (message: string, err: unknown, runId: string, workflowId: string): void => {
    options.logger?.logError(message, err, { runId, workflowId });
  };

  const checkOpen = (): void => {
    if (closing) throw new CoordinatorError(CoordinatorErrorCode.SHUTTING_DOWN, 'the coordinator is shutting down');
  };

  // --- workflows ---

  const createWorkflow = (request: AnyRequest): Message => {
    checkOpen();
    const text = request.document;
    if (typeof text !== 'string' || text.trim() === '') throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, 'document is empty');
    const format = request.format === 'DOCUMENT_FORMAT_JSON' ? 'json' : 'yaml';
    const workflow = parseWorkflowDocument(text, { format, tools, ...(agents === undefined ? {} : { agents }) });
    // Compiles against the engine's registry (unknown agents, bad options...): throws WorkflowDefinitionError.
    const { workflowId, definitionHash } = engine.register(workflow);
    const existing = workflows.get(workflowId)?.versions.get(definitionHash);
    if (existing !== undefined) {
      if (request.validateOnly !== true) workflows.get(workflowId)!.latest = definitionHash;
      return existing.message;
    }
    const message: Message = {
      name: workflowName(workflowId),
      workflowId,
      displayName: workflow.name === workflow.id ? '' : workflow.name,
      description: workflow.description,
      definitionHash,
      document: workflow.definitionDocument ?? '',
      totalSteps: workflow.steps.length,
    };
    if (request.validateOnly === true) return message;
    message.createTime = toProtoTimestamp(Date.now());
    let entry = workflows.get(workflowId);
    if (entry === undefined) {
      entry = { latest: definitionHash, versions: new Map() };
      workflows.set(workflowId, entry);
    }
    entry.versions.set(definitionHash, { workflow, message });
    entry.latest = definitionHash;
    return message;
  };

  const resolveWorkflow = (name: unknown, hash: unknown): WorkflowVersion => {
    const workflowId = resourceId(name, 'workflows');
    const entry = workflows.get(workflowId);
    const wanted = typeof hash === 'string' && hash !== '' ? hash : entry?.latest;
    const version = wanted === undefined ? undefined : entry?.versions.get(wanted);
    if (version === undefined) {
      const what = typeof hash === 'string' && hash !== '' ? `workflow ${workflowId} version ${hash}` : `workflow ${workflowId}`;
      throw new CoordinatorError(CoordinatorErrorCode.WORKFLOW_NOT_FOUND, `${what} is not registered`);
    }
    return version;
  };

  const listWorkflows = (request: AnyRequest): Message => {
    const pageSize = pageSizeOf(request.pageSize);
    const after = decodePageToken(request.pageToken, 'workflows', (c) => (typeof c.after === 'string' ? c.after : undefined));
    const ids = [...workflows.keys()].sort().filter((id) => after === undefined || id > after);
    const page = ids.slice(0, pageSize);
    const last = page[page.length - 1];
    return {
      workflows: page.map((id) => {
        const entry = workflows.get(id)!;
        return entry.versions.get(entry.latest)!.message;
      }),
      nextPageToken: ids.length > pageSize && last !== undefined ? encodePageToken({ k: 'workflows', after: last }) : '',
    };
  };

  // --- runs ---

  const listRuns = async (request: AnyRequest): Promise<Message> => {
    const pageSize = pageSizeOf(request.pageSize);
    const before = decodePageToken(request.pageToken, 'runs', (c) =>
      typeof c.createdAt === 'number' && Number.isFinite(c.createdAt) && typeof c.runId === 'string' ? { createdAt: c.createdAt, runId: c.runId } : undefined,
    );
    const workflowId = typeof request.workflow === 'string' && request.workflow !== '' ? resourceId(request.workflow, 'workflows') : undefined;
    let status: RunStatus | undefined;
    if (typeof request.status === 'string' && request.status !== '' && request.status !== 'RUN_STATUS_UNSPECIFIED') {
      status = RUN_STATUSES[request.status];
      if (status === undefined) throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, `status ${request.status} is not a run status`);
    }
    // One more than a page: whether there is a next page.
    const records = await store.listRuns({
      ...(workflowId === undefined ? {} : { workflowId }),
      ...(status === undefined ? {} : { status }),
      ...(before === undefined ? {} : { before }),
      limit: pageSize + 1,
    });
    const page = records.slice(0, pageSize);
    const runs = await Promise.all(page.map(async (record) => runToProto(record, await store.readEvents(record.runId), false)));
    const last = page[page.length - 1];
    return {
      runs,
      nextPageToken: records.length > pageSize && last !== undefined ? encodePageToken({ k: 'runs', createdAt: last.createdAt, runId: last.runId }) : '',
    };
  };

  const readRun = async (runId: string): Promise<Message> => {
    const record = await store.getRun(runId);
    if (record === undefined) throw new CoordinatorError(CoordinatorErrorCode.RUN_NOT_FOUND, `run ${runId} does not exist`);
    return runToProto(record, await store.readEvents(runId));
  };

  const launch = async (request: AnyRequest): Promise<string> => {
    const { workflow } = resolveWorkflow(request.workflow, request.definitionHash);
    let runId: string | undefined;
    if (typeof request.runId === 'string' && request.runId !== '') {
      runId = request.runId;
      if (!RUN_ID_PATTERN.test(runId)) {
        throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, `run_id must be 1-128 characters of letters, digits, '.', '_', '~' or '-'`);
      }
      if (active.has(runId) || (await store.getRun(runId)) !== undefined) {
        throw new CoordinatorError(CoordinatorErrorCode.RUN_ALREADY_EXISTS, `run ${runId} already exists`);
      }
    }
    const ctx = new WorkflowContext({
      workflowId: workflow.id,
      variables: jsonObject(request.variables) ?? {},
      metadata: jsonObject(request.metadata) ?? {},
      userContext: jsonObject(request.userContext),
    });
    const controller = new AbortController();
    let onStarted!: (runId: string) => void;
    let onFailed!: (err: unknown) => void;
    const started = new Promise<string>((resolve, reject) => {
      onStarted = resolve;
      onFailed = reject;
    });
    let assigned = runId;
    const onEvent = (event: RunEvent): void => {
      if (event.type !== 'run_started') return;
      assigned = event.runId;
      if (!active.has(event.runId)) active.set(event.runId, controller);
      onStarted(event.runId);
    };
    if (runId !== undefined) active.set(runId, controller);
    const execution = engine.executeWorkflow(workflow, ctx, { ...(runId === undefined ? {} : { runId }), signal: controller.signal, onEvent });
    execution.then(
      (result) => onStarted(result.runId),
      (err: unknown) => {
        onFailed(err);
        logError('run failed to execute', err, assigned ?? '-', workflow.id);
      },
    );
    void execution
      .finally(() => {
        if (assigned !== undefined && active.get(assigned) === controller) active.delete(assigned);
      })
      .catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(new CoordinatorError(CoordinatorErrorCode.SHUTTING_DOWN, `the run did not start within ${startTimeoutMs} ms`)),
        startTimeoutMs,
      );
    });
    try {
      return await Promise.race([started, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  /** StartRun's run id, honouring request_id idempotency. */
  const startRun = (request: AnyRequest): Promise<string> => {
    checkOpen();
    const requestId = typeof request.requestId === 'string' ? request.requestId : '';
    if (requestId === '') return launch(request);
    const fingerprint = JSON.stringify([request.workflow, request.definitionHash, request.variables, request.metadata, request.userContext, request.runId]);
    const seen = requests.get(requestId);
    if (seen !== undefined) {
      if (seen.fingerprint !== fingerprint) {
        return Promise.reject(new CoordinatorError(CoordinatorErrorCode.REQUEST_ID_REUSED, `request_id ${requestId} was used with a different request`));
      }
      return seen.runId;
    }
    const runId = launch(request);
    requests.set(requestId, { fingerprint, runId });
    // A request that failed to start anything may be retried with the same request_id.
    runId.catch(() => {
      if (requests.get(requestId)?.runId === runId) requests.delete(requestId);
    });
    return runId;
  };

  const cancelRun = async (request: AnyRequest): Promise<Message> => {
    const runId = resourceId(request.name, 'runs');
    const record = await store.getRun(runId);
    const controller = active.get(runId);
    if (record === undefined && controller === undefined) throw new CoordinatorError(CoordinatorErrorCode.RUN_NOT_FOUND, `run ${runId} does not exist`);
    if (record !== undefined && isFinished(record.status)) {
      throw new CoordinatorError(CoordinatorErrorCode.RUN_ALREADY_FINISHED, `run ${runId} already finished (${record.status})`);
    }
    if (controller === undefined) {
      // Unfinished in the store but not executing here (another coordinator, or awaiting recovery).
      throw Object.assign(new Error(`run ${runId} is not executing on this coordinator`), { code: CoordinatorErrorCode.RUN_ALREADY_FINISHED });
    }
    const reason = typeof request.reason === 'string' && request.reason !== '' ? request.reason : 'cancelled by CancelRun';
    controller.abort(new Error(reason));
    return readRun(runId);
  };

  /** Streams a run's events after `afterSeq`, with backpressure, until its terminal event or the client leaves. */
  const streamRun = async (call: ServerWritableStream<AnyRequest, unknown>, runId: string, afterSeq: number): Promise<void> => {
    let gone = call.cancelled || call.destroyed;
    const left = new Promise<'left'>((resolve) => {
      const leave = () => {
        gone = true;
        resolve('left');
      };
      call.once('cancelled', leave);
      call.once('close', leave);
      call.once('error', leave);
    });
    const record = await store.getRun(runId);
    if (record === undefined) throw new CoordinatorError(CoordinatorErrorCode.RUN_NOT_FOUND, `run ${runId} does not exist`);
    if (isFinished(record.status) && afterSeq >= record.lastSeq) {
      // Nothing more will ever come: the engine's watcher would wait for live events forever.
      if (afterSeq > record.lastSeq) {
        throw new CoordinatorError(CoordinatorErrorCode.AFTER_SEQ_OUT_OF_RANGE, `run ${runId} finished at seq ${record.lastSeq}; after_seq ${afterSeq} is past it`);
      }
      call.end();
      return;
    }
    // Ends the engine's watch at once when the client leaves, even while the run is idle.
    const stop = new AbortController();
    void left.then(() => stop.abort());
    const events = engine.watchRun(runId, { afterSeq, signal: stop.signal });
    try {
      while (!gone) {
        const next = await Promise.race([events.next(), left]);
        if (next === 'left' || next.done === true) break;
        const event = next.value;
        if (!call.write(runEventToProto(event))) {
          await Promise.race([once(call, 'drain'), left]);
        }
        if (isTerminalEvent(event)) break;
      }
      if (!gone) call.end();
    } finally {
      stop.abort();
      void events.return(undefined).catch(() => {});
    }
  };

  const streamHandler = (body: (call: ServerWritableStream<AnyRequest, unknown>) => Promise<void>) => (call: ServerWritableStream<AnyRequest, unknown>) => {
    streams.add(call);
    body(call)
      .catch((err: unknown) => {
        if (!call.cancelled && !call.destroyed) call.emit('error', toGrpcStatus(err));
      })
      .finally(() => streams.delete(call));
  };

  const unary = (body: (request: AnyRequest) => Message | Promise<Message>) => (call: ServerUnaryCall<AnyRequest, unknown>, callback: sendUnaryData<unknown>) => {
    new Promise<Message>((resolve) => resolve(body(call.request))).then(
      (response) => callback(null, response),
      (err: unknown) => callback(toGrpcStatus(err)),
    );
  };

  const handlers: UntypedServiceImplementation = {
    createWorkflow: unary(createWorkflow),
    getWorkflow: unary((request) => resolveWorkflow(request.name, request.definitionHash).message),
    listWorkflows: unary(listWorkflows),
    startRun: unary(async (request) => readRun(await startRun(request))),
    getRun: unary((request) => readRun(resourceId(request.name, 'runs'))),
    listRuns: unary(listRuns),
    cancelRun: unary(cancelRun),
    watchRun: streamHandler(async (call) => {
      const runId = resourceId(call.request.name, 'runs');
      await streamRun(call, runId, afterSeqOf(call.request.afterSeq));
    }),
    executeWorkflow: streamHandler(async (call) => {
      const afterSeq = afterSeqOf(call.request.afterSeq);
      const runId = await startRun((call.request.run ?? {}) as AnyRequest);
      await streamRun(call, runId, afterSeq);
    }),
    listTools: unary(() => ({
      tools: [...tools].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(toolToProto),
      nextPageToken: '',
    })),
  };

  const server = new Server(options.token === undefined ? {} : { interceptors: [bearerTokenInterceptor(options.token)] });
  server.addService(workflowServiceDefinition, handlers);
  // Health and reflection are exempt from the bearer token by path (auth.ts AUTH_EXEMPT_PREFIXES).
  const health = new HealthImplementation({ '': 'NOT_SERVING', [WORKFLOW_SERVICE_NAME]: 'NOT_SERVING' });
  health.addToServer(server);
  new ReflectionService(reflectionPackageDefinition).addToServer(server);
  const host = options.host ?? '127.0.0.1';
  const address = host.includes(':') && !host.startsWith('[') ? `[${host}]:${options.port ?? 0}` : `${host}:${options.port ?? 0}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  health.setStatus('', 'SERVING');
  health.setStatus(WORKFLOW_SERVICE_NAME, 'SERVING');

  let closed: Promise<void> | undefined;
  const close = (graceMs = 5000): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      // Probes see the drain first (load balancers stop sending new calls).
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(WORKFLOW_SERVICE_NAME, 'NOT_SERVING');
      // tryShutdown waits for open streams (grpc-node#1458): end them, retryably, first.
      const draining = toGrpcStatus(new CoordinatorError(CoordinatorErrorCode.SHUTTING_DOWN, 'the coordinator is shutting down; resume with after_seq'));
      for (const call of streams) if (!call.cancelled && !call.destroyed) call.emit('error', draining);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    })();
    return closed;
  };

  return { port, close };
}

