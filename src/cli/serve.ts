/** `jafw serve`: a coordinator over a SqliteRunStore and an engine with the built-in and example tools. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { orderAgents, orderModelProvider, orderTools } from '../../examples/order-processing.ts';
import { WorkflowEngine } from '../engine/engine.ts';
import { createCoordinator, type Coordinator } from '../grpc/coordinator.ts';
import { checkExposure, type TlsOptions } from '../grpc/server-config.ts';
import { startMetricsServer, type MetricsServer } from '../observability/metrics-server.ts';
import { WorkflowMetrics } from '../observability/metrics.ts';
import { withModelMetrics } from '../observability/model-metrics.ts';
import { pino } from 'pino';
import { basePinoOptions, logLevelFromEnv, WorkflowLogger } from '../observability/workflow-logger.ts';
import { SqliteRunStore } from '../store/sqlite-store.ts';
import { builtinTools } from '../tools/builtin.ts';
import { loadCoordinatorConfig } from './config.ts';
import { UsageError, println, type CliIO } from './io.ts';

export interface ServeOptions {
  readonly host: string;
  readonly port: number;
  readonly db: string;
  readonly token?: string;
  /** Listen beyond loopback with neither a token nor TLS. */
  readonly insecure?: boolean;
  /** PEM files: serve TLS with cert and key; with clientCa too, mTLS. */
  readonly tls?: TlsOptions;
  /** Prometheus /metrics port (0: any free port); undefined: no metrics server. */
  readonly metricsPort?: number;
  /** Default: `host`. */
  readonly metricsHost?: string;
  readonly logger?: WorkflowLogger;
  /** A configuration file registering agents and module tools (see src/cli/config.ts). */
  readonly config?: string;
  /** Where the model configuration is read (default process.env): OPENAI_API_KEY, OPENAI_BASE_URL, JAF_MODEL. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface Server {
  readonly address: string;
  readonly coordinator: Coordinator;
  readonly engine: WorkflowEngine;
  readonly store: SqliteRunStore;
  readonly metrics: WorkflowMetrics;
  /** The scrape URL, when a metrics port was given. */
  readonly metricsUrl: string | undefined;
  /** Closes coordinator, metrics server, engine and store, in that order. */
  close(): Promise<void>;
}

/** Throws UsageError for a bad port, or a non-loopback host with neither a token nor TLS (unless insecure). */
export function checkServeOptions(options: ServeOptions): void {
  for (const [flag, port] of [
    ['--port', options.port],
    ['--metrics-port', options.metricsPort],
  ] as const) {
    if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new UsageError(`${flag} must be 0..65535 (got ${port})`);
  }
  try {
    checkExposure(
      options.host,
      { token: options.token !== undefined && options.token !== '', tls: options.tls !== undefined, allowInsecureRemote: options.insecure === true },
      { secure: 'Pass --token (or JAFW_TOKEN) or --tls-cert/--tls-key', optOut: '--insecure' },
    );
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Builds and starts the server (the store, the engine, recovery, the coordinator, the metrics port). */
export async function startServer(options: ServeOptions, io: CliIO): Promise<Server> {
  checkServeOptions(options);
  // The configuration first: a bad file fails before the store is opened.
  const baseTools = [...builtinTools(), ...orderTools];
  const configured = options.config === undefined ? { tools: [], agents: [] } : loadCoordinatorConfig(options.config, baseTools, orderAgents, options.env ?? process.env);
  const tools = [...baseTools, ...configured.tools];
  const agents = [...orderAgents, ...configured.agents];
  if (options.db !== ':memory:') mkdirSync(dirname(options.db), { recursive: true });
  const store = SqliteRunStore.open({ path: options.db });
  const metrics = new WorkflowMetrics();
  const model = orderModelProvider(options.env ?? process.env);
  const engine = new WorkflowEngine({
    tools,
    agents,
    modelProvider: withModelMetrics(model.provider, metrics),
    store,
    pool: { onWait: (seconds) => metrics.observePoolWait(seconds) },
    onEvent: (event) => metrics.observeEvent(event),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  metrics.setSources({ activeRuns: () => engine.activeRunCount, pool: () => engine.poolStats() });
  let coordinator: Coordinator | undefined;
  let metricsServer: MetricsServer | undefined;
  try {
    println(
      io.stdout,
      `jafw: store ${options.db}; ${tools.length} tools (${tools.map((t) => t.name).join(', ')}); agents ${agents.map((a) => a.name).join(', ')} answered by ${model.description}`,
    );
    const report = await engine.recover();
    println(io.stdout, `jafw: recovery: ${report.resumed.length} unfinished run(s) resumed, ${report.failed.length} could not be resumed (marked failed)`);
    coordinator = await createCoordinator({
      engine,
      store,
      tools,
      agents,
      host: options.host,
      port: options.port,
      metrics,
      allowInsecureRemote: options.insecure === true,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.token === undefined || options.token === '' ? {} : { token: options.token }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    });
    if (options.metricsPort !== undefined) {
      metricsServer = await startMetricsServer({ registry: metrics.registry, host: options.metricsHost ?? options.host, port: options.metricsPort });
    }
  } catch (err) {
    await coordinator?.close(0);
    await engine.close();
    await store.close();
    throw err;
  }
  const started = coordinator;
  const host = options.host.includes(':') && !options.host.startsWith('[') ? `[${options.host}]` : options.host;
  const address = `${host}:${started.port}`;
  let closed: Promise<void> | undefined;
  return {
    address,
    coordinator: started,
    engine,
    store,
    metrics,
    metricsUrl: metricsServer?.url,
    close: () =>
      (closed ??= (async () => {
        await started.close();
        await metricsServer?.close();
        await engine.close();
        await store.close();
      })()),
  };
}

/** Runs the server until SIGINT/SIGTERM; then closes it and answers 0. */
export async function serve(options: ServeOptions, io: CliIO): Promise<number> {
  // Structured logs go to stderr as JSON lines, so stdout keeps only the human-readable lines above.
  const logger = options.logger ?? new WorkflowLogger({ logger: pino(basePinoOptions(logLevelFromEnv()), pino.destination(2)) });
  const server = await startServer({ ...options, logger }, io);
  const security = [options.tls === undefined ? '' : options.tls.clientCa === undefined ? 'TLS' : 'mTLS', options.token ? 'token required' : ''].filter((s) => s !== '');
  println(io.stdout, `jafw: listening on ${server.address}${security.length > 0 ? ` (${security.join(', ')})` : ''}`);
  if (server.metricsUrl !== undefined) println(io.stdout, `jafw: metrics on ${server.metricsUrl}`);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      println(io.stdout, `jafw: ${signal}, shutting down`);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
  println(io.stdout, 'jafw: stopped');
  return 0;
}
