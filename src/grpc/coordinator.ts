/**
 * The coordinator: a grpc-js server for WorkflowService over a WorkflowEngine and its RunStore.
 *
 * Every RPC of WorkflowService, plus grpc.health.v1.Health (grpc-health-check: SERVING once bound,
 * NOT_SERVING from the start of close()) and server reflection (@grpc/reflection, listing both
 * services). Workflows, request_ids and runs all live in the store, so a restarted coordinator serves
 * the same state. List page tokens are opaque: base64url of a JSON cursor.
 *
 * Every handler ends a failed call through toGrpcStatus, never by letting an error escape.
 */
import { once } from 'node:events';
import { Server, type ServerInterceptor, type ServerUnaryCall, type ServerWritableStream, type UntypedServiceImplementation, type sendUnaryData } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Agent } from '../agents/agent.ts';
import type { WorkflowEngine, Named } from '../engine/engine.ts';
import { WatchError, WatchErrorCode } from '../engine/event-bus.ts';
import type { RunEvent, RunStatus } from '../engine/events.ts';
import { grpcMetricsInterceptor } from '../observability/grpc-metrics.ts';
import type { WorkflowMetrics } from '../observability/metrics.ts';
import type { WorkflowLogger } from '../observability/workflow-logger.ts';
import { isFinished, type RunStore } from '../store/run-store.ts';
import type { Tool } from '../tools/tool.ts';
import { bearerTokenInterceptor } from './auth.ts';
import { HealthWatchers } from './health-watchers.ts';
import { isTerminalEvent, runEventToProto, runSummaryToProto, runToProto, toolToProto, type Message } from './mapping.ts';
import { WORKFLOW_SERVICE_NAME, reflectionPackageDefinition, workflowServiceDefinition } from './proto.ts';
import { afterSeqOf, CoordinatorError, decodePageToken, encodePageToken, pageSizeOf, resourceId, RUN_STATUSES, toList, type AnyRequest } from './requests.ts';
import { RunLauncher, type StartedRun } from './run-launcher.ts';
import { checkExposure, ServerConfigError, serverChannelOptions, serverCredentials, type ServerLimits, type TlsOptions } from './server-config.ts';
import { CoordinatorErrorCode, toGrpcStatus } from './status.ts';
import { WorkflowCatalog } from './workflow-catalog.ts';

export interface CoordinatorOptions {
  readonly engine: WorkflowEngine;
  /** The engine's store (the same one given to `new WorkflowEngine({ store })`); it also keeps the workflows and request_ids. */
  readonly store: RunStore;
  /** The engine's tools: what ListTools reports and what documents are checked against. */
  readonly tools?: Named<Tool>;
  /** The engine's agents: what documents are checked against (else the engine checks at registration). */
  readonly agents?: Named<Agent>;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0: any free port (see `port` on the result). */
  readonly port?: number;
  /** When set, every call (but health checks and reflection) needs `authorization: Bearer <token>`. */
  readonly token?: string;
  /** Serve TLS (mTLS with `clientCa`) instead of plaintext. */
  readonly tls?: TlsOptions;
  /** Listen beyond loopback with neither a token nor TLS (refused otherwise). */
  readonly allowInsecureRemote?: boolean;
  /** Message size, keepalive and per-connection stream limits (see defaultServerLimits). */
  readonly limits?: ServerLimits;
  /** Prometheus metrics for every RPC, the streams and the engine's runs (see WorkflowMetrics). */
  readonly metrics?: WorkflowMetrics;
  /** For failures of runs started here (their rejections are otherwise swallowed). */
  readonly logger?: WorkflowLogger;
  /** How long StartRun waits for the run_started event to be stored, in ms (default 30,000). */
  readonly startTimeoutMs?: number;
  /**
   * Live events a WatchRun/ExecuteWorkflow stream may hold while its client reads slowly (default 1,024,
   * 1 to 1,000,000); past it the stream ends with RESOURCE_EXHAUSTED and the client resumes from its last seq.
   */
  readonly watchBufferEvents?: number;
}

export interface Coordinator {
  readonly port: number;
  /**
   * Stops accepting calls, ends open watch streams (and health watches) with UNAVAILABLE (clients
   * resume with after_seq) and shuts the server down, forcibly after `graceMs` (default 5000). Runs
   * keep running in the engine; the engine and store are the caller's to close.
   */
  close(graceMs?: number): Promise<void>;
}

export async function createCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  const { engine, store, metrics } = options;
  const host = options.host ?? '127.0.0.1';
  checkExposure(host, { token: options.token !== undefined && options.token !== '', tls: options.tls !== undefined, allowInsecureRemote: options.allowInsecureRemote === true });
  const channelOptions = serverChannelOptions(options.limits);
  const watchBufferEvents = options.watchBufferEvents ?? 1024;
  if (!Number.isInteger(watchBufferEvents) || watchBufferEvents < 1 || watchBufferEvents > 1_000_000) {
    throw new ServerConfigError(`watchBufferEvents must be an integer from 1 to 1000000, got ${String(options.watchBufferEvents)}`);
  }
  const credentials = serverCredentials(options.tls);
  const tools = toList(options.tools);
  const agents = options.agents === undefined ? undefined : toList(options.agents);
  const catalog = new WorkflowCatalog({ engine, store, tools, agents });
  const launcher = new RunLauncher({ engine, store, catalog, logger: options.logger, startTimeoutMs: options.startTimeoutMs ?? 30_000 });
  /** Open WatchRun/ExecuteWorkflow streams, ended on close. */
  const streams = new Set<ServerWritableStream<AnyRequest, unknown>>();
  let closing = false;

  const checkOpen = (): void => {
    if (closing) throw new CoordinatorError(CoordinatorErrorCode.SHUTTING_DOWN, 'the coordinator is shutting down');
  };

  // --- workflows ---

  const createWorkflow = (request: AnyRequest): Promise<Message> => {
    checkOpen();
    const text = request.document;
    if (typeof text !== 'string' || text.trim() === '') throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, 'document is empty', 'document');
    return catalog.create({ document: text, format: request.format === 'DOCUMENT_FORMAT_JSON' ? 'json' : 'yaml', validateOnly: request.validateOnly === true });
  };

  const listWorkflows = async (request: AnyRequest): Promise<Message> => {
    const pageSize = pageSizeOf(request.pageSize);
    const after = decodePageToken(request.pageToken, 'workflows', (c) => (typeof c.after === 'string' ? c.after : undefined));
    const page = await catalog.list(after, pageSize);
    return { workflows: page.workflows, nextPageToken: page.more && page.lastId !== undefined ? encodePageToken({ k: 'workflows', after: page.lastId }) : '' };
  };

  // --- runs ---

  const listRuns = async (request: AnyRequest): Promise<Message> => {
    const pageSize = pageSizeOf(request.pageSize);
    const before = decodePageToken(request.pageToken, 'runs', (c) =>
      typeof c.createdAt === 'number' && Number.isFinite(c.createdAt) && typeof c.runId === 'string' ? { createdAt: c.createdAt, runId: c.runId } : undefined,
    );
    const workflowId = typeof request.workflow === 'string' && request.workflow !== '' ? resourceId(request.workflow, 'workflows', 'workflow') : undefined;
    let status: RunStatus | undefined;
    if (typeof request.status === 'string' && request.status !== '' && request.status !== 'RUN_STATUS_UNSPECIFIED') {
      status = RUN_STATUSES[request.status];
      if (status === undefined) throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, `status ${request.status} is not a run status`, 'status');
    }
    // One more than a page: whether there is a next page.
    const records = await store.listRuns({
      ...(workflowId === undefined ? {} : { workflowId }),
      ...(status === undefined ? {} : { status }),
      ...(before === undefined ? {} : { before }),
      limit: pageSize + 1,
    });
    const page = records.slice(0, pageSize);
    const runs = await Promise.all(page.map(async (record) => runSummaryToProto(record, await store.readFirstAndLastEvents(record.runId))));
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

  const startRun = async (request: AnyRequest): Promise<string> => {
    checkOpen();
    return (await launcher.start(request)).runId;
  };

  const cancelRun = async (request: AnyRequest): Promise<Message> => {
    const runId = resourceId(request.name, 'runs');
    const record = await store.getRun(runId);
    const controller = launcher.controller(runId);
    if (record === undefined && controller === undefined) throw new CoordinatorError(CoordinatorErrorCode.RUN_NOT_FOUND, `run ${runId} does not exist`);
    if (record !== undefined && isFinished(record.status)) {
      throw new CoordinatorError(CoordinatorErrorCode.RUN_ALREADY_FINISHED, `run ${runId} already finished (${record.status})`);
    }
    if (controller === undefined) {
      // Unfinished in the store but not executing here (another coordinator, or awaiting recovery).
      throw new CoordinatorError(CoordinatorErrorCode.RUN_ALREADY_FINISHED, `run ${runId} is not executing on this coordinator`);
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
    const events = engine.watchRun(runId, { afterSeq, signal: stop.signal, maxBuffered: watchBufferEvents });
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

  /**
   * ExecuteWorkflow: starts the run and streams it. A run this call launched is streamed straight from
   * its committed events (the launcher's observer: no store read, no watcher); one its request_id had
   * already started is streamed from the store like WatchRun. Bounded like WatchRun: past
   * `watchBufferEvents` unsent messages the stream ends with RESOURCE_EXHAUSTED (WATCH_TOO_SLOW) and the
   * client resumes with WatchRun after the last seq it received.
   */
  const executeAndStream = (call: ServerWritableStream<AnyRequest, unknown>, request: AnyRequest, afterSeq: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      let open = true;
      const finish = (err?: unknown): void => {
        if (!open) return;
        open = false;
        call.off('cancelled', leave);
        call.off('close', leave);
        call.off('error', leave);
        if (err === undefined) resolve();
        else reject(err);
      };
      const leave = (): void => finish();
      call.once('cancelled', leave);
      call.once('close', leave);
      call.once('error', leave);
      const observer = (event: RunEvent): void => {
        if (!open) return;
        if (call.cancelled || call.destroyed) {
          finish();
          return;
        }
        const terminal = isTerminalEvent(event);
        if (event.seq <= afterSeq) {
          // As WatchRun: after_seq at the last event ends the stream at once, past it is OUT_OF_RANGE.
          if (terminal && event.seq < afterSeq) {
            finish(new CoordinatorError(CoordinatorErrorCode.AFTER_SEQ_OUT_OF_RANGE, `run ${event.runId} finished at seq ${event.seq}; after_seq ${afterSeq} is past it`));
          } else if (terminal) {
            call.end();
            finish();
          }
          return;
        }
        // Messages the client has not taken yet wait in the call's buffer; that buffer is the bound.
        if (call.writableLength >= watchBufferEvents) {
          finish(new WatchError(WatchErrorCode.WATCH_TOO_SLOW, `the client of run ${event.runId} fell more than ${watchBufferEvents} events behind; resume with WatchRun after the last seq received`));
          return;
        }
        call.write(runEventToProto(event));
        if (terminal) {
          call.end();
          finish();
        }
      };
      let starting: Promise<StartedRun>;
      try {
        starting = launcher.start(request, observer);
      } catch (err) {
        finish(err);
        return;
      }
      starting.then((started) => {
        if (started.execution === undefined) {
          // Not launched here (a request_id retry): its events are in the store.
          if (open) streamRun(call, started.runId, afterSeq).then(() => finish(), finish);
          return;
        }
        // A run that fails outside its steps (its store failing) may end with no terminal event.
        started.execution.catch(finish);
      }, finish);
    });

  const streamHandler = (body: (call: ServerWritableStream<AnyRequest, unknown>) => Promise<void>) => (call: ServerWritableStream<AnyRequest, unknown>) => {
    streams.add(call);
    metrics?.streamOpened();
    body(call)
      .catch((err: unknown) => {
        if (!call.cancelled && !call.destroyed) call.emit('error', toGrpcStatus(err));
      })
      .finally(() => {
        streams.delete(call);
        metrics?.streamClosed();
      });
  };

  const unary = (body: (request: AnyRequest) => Message | Promise<Message>) => (call: ServerUnaryCall<AnyRequest, unknown>, callback: sendUnaryData<unknown>) => {
    new Promise<Message>((resolve) => resolve(body(call.request))).then(
      (response) => callback(null, response),
      (err: unknown) => callback(toGrpcStatus(err)),
    );
  };

  const handlers: UntypedServiceImplementation = {
    createWorkflow: unary(createWorkflow),
    getWorkflow: unary((request) => catalog.describe(resourceId(request.name, 'workflows'), typeof request.definitionHash === 'string' ? request.definitionHash : undefined)),
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
      checkOpen();
      await executeAndStream(call, (call.request.run ?? {}) as AnyRequest, afterSeq);
    }),
    listTools: unary(() => ({
      tools: [...tools].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(toolToProto),
      nextPageToken: '',
    })),
  };

  const healthWatchers = new HealthWatchers();
  const interceptors: ServerInterceptor[] = [healthWatchers.interceptor];
  if (metrics !== undefined) interceptors.push(grpcMetricsInterceptor(metrics));
  if (options.token !== undefined && options.token !== '') interceptors.push(bearerTokenInterceptor(options.token));
  const server = new Server({ ...channelOptions, interceptors });
  server.addService(workflowServiceDefinition, handlers);
  // Health and reflection are exempt from the bearer token by path (auth.ts AUTH_EXEMPT_PREFIXES).
  const health = new HealthImplementation({ '': 'NOT_SERVING', [WORKFLOW_SERVICE_NAME]: 'NOT_SERVING' });
  health.addToServer(server);
  new ReflectionService(reflectionPackageDefinition).addToServer(server);
  const address = host.includes(':') && !host.startsWith('[') ? `[${host}]:${options.port ?? 0}` : `${host}:${options.port ?? 0}`;
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (error, bound) => (error ? reject(error) : resolve(bound))));
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
      healthWatchers.endAll({ ...draining, metadata: draining.metadata });
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
