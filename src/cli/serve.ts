/** `jafw serve`: a coordinator over a SqliteRunStore and an engine with the built-in and example tools. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createOfflineModelProvider, orderAgents, orderTools } from '../../examples/order-processing.ts';
import { WorkflowEngine } from '../engine/engine.ts';
import { createCoordinator, type Coordinator } from '../grpc/coordinator.ts';
import { pino } from 'pino';
import { logLevelFromEnv, WorkflowLogger } from '../observability/workflow-logger.ts';
import { SqliteRunStore } from '../store/sqlite-store.ts';
import { builtinTools } from '../tools/builtin.ts';
import { UsageError, println, type CliIO } from './io.ts';

export interface ServeOptions {
  readonly host: string;
  readonly port: number;
  readonly db: string;
  readonly token?: string;
  readonly insecure?: boolean;
  readonly logger?: WorkflowLogger;
}

export interface Server {
  readonly address: string;
  readonly coordinator: Coordinator;
  readonly engine: WorkflowEngine;
  readonly store: SqliteRunStore;
  /** Closes coordinator, engine and store, in that order. */
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host.toLowerCase()) || host.startsWith('127.');
}

/** Throws UsageError for a non-loopback host with no token (unless insecure). */
export function checkServeOptions(options: ServeOptions): void {
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) throw new UsageError(`--port must be 0..65535 (got ${options.port})`);
  if (!isLoopback(options.host) && (options.token === undefined || options.token === '') && options.insecure !== true) {
    throw new UsageError(
      `refusing to listen on ${options.host} without a token: anyone who can reach it could run tools. Pass --token (or JAFW_TOKEN), or --insecure to accept the risk.`,
    );
  }
}

/** Builds and starts the server (the store, the engine, recovery, the coordinator). */
export async function startServer(options: ServeOptions, io: CliIO): Promise<Server> {
  checkServeOptions(options);
  if (options.db !== ':memory:') mkdirSync(dirname(options.db), { recursive: true });
  const store = SqliteRunStore.open({ path: options.db });
  const tools = [...builtinTools(), ...orderTools];
  const engine = new WorkflowEngine({
    tools,
    agents: orderAgents,
    modelProvider: createOfflineModelProvider(),
    store,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  let coordinator: Coordinator | undefined;
  try {
    println(
      io.stdout,
      `jafw: store ${options.db}; ${tools.length} tools (${tools.map((t) => t.name).join(', ')}); agents ${orderAgents.map((a) => a.name).join(', ')} answered by the offline scripted model provider (no model is called)`,
    );
    const report = await engine.recover();
    println(io.stdout, `jafw: recovery: ${report.resumed.length} unfinished run(s) resumed, ${report.failed.length} could not be resumed (marked failed)`);
    coordinator = await createCoordinator({
      engine,
      store,
      tools,
      agents: orderAgents,
      host: options.host,
      port: options.port,
      ...(options.token === undefined || options.token === '' ? {} : { token: options.token }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    });
  } catch (err) {
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
    close: () =>
      (closed ??= (async () => {
        await started.close();
        await engine.close();
        await store.close();
      })()),
  };
}

/** Runs the server until SIGINT/SIGTERM; then closes it and answers 0. */
export async function serve(options: ServeOptions, io: CliIO): Promise<number> {
  // Structured logs go to stderr as JSON lines, so stdout keeps only the human-readable lines above.
  const logger = options.logger ?? new WorkflowLogger({ logger: pino({ level: logLevelFromEnv(), base: { service: 'jaf-workflows' } }, pino.destination(2)) });
  const server = await startServer({ ...options, logger }, io);
  println(io.stdout, `jafw: listening on ${server.address}${options.token ? ' (token required)' : ''}`);
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
