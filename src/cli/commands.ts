/** The client commands: validate, run, watch, get, list, cancel. */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseWorkflowDocument } from '../definition/declarative/index.ts';
import { WorkflowDefinitionError } from '../errors.ts';
import { toProtoStruct } from '../grpc/proto.ts';
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { describeServiceError, isServiceError, type Connection, type Msg } from './client.ts';
import { formatEvent, formatRun, formatRunLine, runStatus } from './format.ts';
import { EXIT_FAILED, EXIT_OK, UsageError, println, type CliIO } from './io.ts';

async function readDocument(file: string): Promise<{ text: string; format: 'json' | 'yaml' }> {
  try {
    const text = await readFile(file, 'utf8');
    return { text, format: extname(file).toLowerCase() === '.json' ? 'json' : 'yaml' };
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

/** `runs/{id}` for an id or a name. */
export function runName(run: string): string {
  return run.startsWith('runs/') ? run : `runs/${run}`;
}

export async function validate(file: string, io: CliIO): Promise<number> {
  const { text, format } = await readDocument(file);
  try {
    const workflow = parseWorkflowDocument(text, { format });
    println(io.stdout, `OK: ${file} (workflow ${workflow.id}, ${workflow.steps.length} top-level steps)`);
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof WorkflowDefinitionError)) throw err;
    println(io.stdout, `${file}: ${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}`);
    for (const issue of err.issues) println(io.stdout, `  ${issue.path || '/'}  [${issue.code}]  ${issue.message}`);
    return EXIT_FAILED;
  }
}

export interface OutputOptions {
  /** One JSON object per line (events, runs) instead of text. */
  readonly json?: boolean;
}

export interface FollowOptions extends OutputOptions {
  /** Reconnection backoff: first delay and cap, in ms (defaults 250 and 5,000). */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** Give up after this many consecutive failed reconnections (default 8). */
  readonly maxReconnects?: number;
}

/** Statuses after which the same stream, resumed from the last seq, can still succeed. */
const RESUMABLE = new Set([status.UNAVAILABLE, status.RESOURCE_EXHAUSTED, status.DEADLINE_EXCEEDED]);

/**
 * Prints a run's events until it finishes; answers its final status. A stream that breaks retryably
 * (the coordinator restarting, a slow-reader cutoff) is resumed with WatchRun after the last seq
 * printed, so no event is lost or printed twice.
 */
async function follow(conn: Connection, first: { method: string; request: Msg }, io: CliIO, options: FollowOptions): Promise<string | undefined> {
  let final: string | undefined;
  let runName: string | undefined;
  let lastSeq = first.method === 'watchRun' ? Number(first.request.afterSeq ?? 0) : 0;
  let call = first;
  let failures = 0;
  for (;;) {
    try {
      await conn.stream(call.method, call.request, (event) => {
        const seq = Number(event.seq);
        if (seq <= lastSeq) return;
        lastSeq = seq;
        failures = 0;
        runName ??= typeof event.run === 'string' ? event.run : undefined;
        if (options.json === true) println(io.stdout, JSON.stringify(event));
        else {
          const line = formatEvent(event);
          if (line !== undefined) println(io.stdout, line);
        }
        if (event.runFinished) final = runStatus((event.runFinished as Msg).status);
      });
      return final;
    } catch (err) {
      // Before the first event of ExecuteWorkflow, the run's name is unknown: retry the call itself,
      // which its request_id makes idempotent.
      // The terminal event was printed: nothing is left to resume, whatever ended the stream after it.
      if (final !== undefined && isServiceError(err)) return final;
      if (!isServiceError(err) || !RESUMABLE.has(err.code)) throw err;
      failures += 1;
      if (failures > (options.maxReconnects ?? 8)) throw err;
      const delay = Math.min(options.retryMaxMs ?? 5000, (options.retryBaseMs ?? 250) * 2 ** (failures - 1));
      println(io.stderr, `jafw: stream interrupted (${describeServiceError(err)}); resuming after seq ${lastSeq} in ${delay} ms`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (runName !== undefined) call = { method: 'watchRun', request: { name: runName, afterSeq: String(lastSeq) } };
    }
  }
}

function exitFor(status: string | undefined, io: CliIO, options: OutputOptions): number {
  if (status === undefined) {
    println(io.stderr, 'error: the event stream ended before the run finished');
    return EXIT_FAILED;
  }
  if (options.json !== true) println(io.stdout, `Final status: ${status}`);
  return status === 'completed' ? EXIT_OK : EXIT_FAILED;
}

/** `--input`: JSON text, or `@file` holding it. */
async function readInput(input: string | undefined): Promise<Record<string, unknown>> {
  if (input === undefined) return {};
  let text = input;
  if (input.startsWith('@')) {
    try {
      text = await readFile(input.slice(1), 'utf8');
    } catch (err) {
      throw new UsageError(`--input: cannot read ${input.slice(1)}: ${(err as Error).message}`);
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--input is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError('--input must be a JSON object');
  return parsed as Record<string, unknown>;
}

export interface RunOptions extends FollowOptions {
  readonly input?: string;
  readonly requestId?: string;
  /** The run's model token budget. */
  readonly tokenBudget?: number;
  /** Record the run's model responses. */
  readonly record?: boolean;
  /** Replay model responses recorded by this run (id or name). */
  readonly replayFrom?: string;
}

export async function run(conn: Connection, file: string, options: RunOptions, io: CliIO): Promise<number> {
  if (options.record === true && options.replayFrom !== undefined) throw new UsageError('--record and --replay-from exclude each other');
  const variables = await readInput(options.input);
  const { text, format } = await readDocument(file);
  const workflow = await conn.unary('createWorkflow', { document: text, format: format === 'json' ? 'DOCUMENT_FORMAT_JSON' : 'DOCUMENT_FORMAT_YAML' });
  if (options.json !== true) println(io.stdout, `Workflow ${String(workflow.name)} (${String(workflow.definitionHash)}, ${String(workflow.totalSteps)} steps)`);
  // Always idempotent, so that a start interrupted before its first event can be retried safely.
  const requestId = options.requestId ?? randomUUID();
  const request: Msg = {
    workflow: workflow.name,
    definitionHash: workflow.definitionHash,
    variables: toProtoStruct(variables),
    requestId,
    ...(options.tokenBudget === undefined ? {} : { tokenBudget: String(options.tokenBudget) }),
    ...(options.record === true ? { recordModelResponses: true } : {}),
    ...(options.replayFrom === undefined ? {} : { replayModelResponsesFrom: runName(options.replayFrom) }),
  };
  const final = await follow(conn, { method: 'executeWorkflow', request: { run: request } }, io, options);
  return exitFor(final, io, options);
}

export async function watch(conn: Connection, runId: string, afterSeq: number | undefined, io: CliIO, options: FollowOptions = {}): Promise<number> {
  const request: Msg = { name: runName(runId) };
  if (afterSeq !== undefined) request.afterSeq = String(afterSeq);
  let final = await follow(conn, { method: 'watchRun', request }, io, options);
  if (final === undefined && afterSeq !== undefined) {
    // Watching after a finished run's last event streams nothing: its status comes from GetRun.
    const found = await conn.unary('getRun', { name: runName(runId) });
    const status = runStatus(found.status);
    if (status === 'completed' || status === 'failed' || status === 'cancelled') final = status;
  }
  return exitFor(final, io, options);
}

export async function get(conn: Connection, runId: string, io: CliIO, options: OutputOptions = {}): Promise<number> {
  const found = await conn.unary('getRun', { name: runName(runId) });
  if (options.json === true) println(io.stdout, JSON.stringify(found));
  else for (const line of formatRun(found)) println(io.stdout, line);
  return EXIT_OK;
}

export async function list(conn: Connection, options: OutputOptions & { workflow?: string; status?: string }, io: CliIO): Promise<number> {
  const request: Msg = {};
  if (options.workflow !== undefined) request.workflow = options.workflow.startsWith('workflows/') ? options.workflow : `workflows/${options.workflow}`;
  if (options.status !== undefined) {
    const status = options.status.toUpperCase().replace(/^RUN_STATUS_/, '');
    if (!['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'].includes(status)) {
      throw new UsageError(`--status must be one of pending, running, completed, failed, cancelled (got ${options.status})`);
    }
    request.status = `RUN_STATUS_${status}`;
  }
  const runs: Msg[] = [];
  let pageToken = '';
  do {
    const page = await conn.unary('listRuns', { ...request, pageToken });
    runs.push(...((page.runs as Msg[] | undefined) ?? []));
    pageToken = typeof page.nextPageToken === 'string' ? page.nextPageToken : '';
  } while (pageToken !== '');
  if (options.json === true) {
    for (const r of runs) println(io.stdout, JSON.stringify(r));
    return EXIT_OK;
  }
  if (runs.length === 0) {
    println(io.stdout, 'No runs.');
    return EXIT_OK;
  }
  for (const r of runs) println(io.stdout, formatRunLine(r));
  println(io.stdout, `${runs.length} run${runs.length === 1 ? '' : 's'}`);
  return EXIT_OK;
}

export async function cancel(conn: Connection, runId: string, io: CliIO, options: OutputOptions = {}): Promise<number> {
  const cancelled = await conn.unary('cancelRun', { name: runName(runId), reason: 'cancelled with jafw cancel' });
  if (options.json === true) println(io.stdout, JSON.stringify(cancelled));
  else println(io.stdout, `Run ${String(cancelled.name)}: ${runStatus(cancelled.status)}`);
  return EXIT_OK;
}
