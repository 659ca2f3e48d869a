/** The client commands: validate, run, watch, get, list, cancel. */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseWorkflowDocument } from '../definition/declarative/index.ts';
import { WorkflowDefinitionError } from '../errors.ts';
import { toProtoStruct } from '../grpc/proto.ts';
import type { Connection, Msg } from './client.ts';
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

/** Streams events to stdout until the run finishes; answers the run's final status. */
async function follow(conn: Connection, method: string, request: Msg, io: CliIO): Promise<string | undefined> {
  let final: string | undefined;
  await conn.stream(method, request, (event) => {
    const line = formatEvent(event);
    if (line !== undefined) println(io.stdout, line);
    if (event.runFinished) final = runStatus((event.runFinished as Msg).status);
  });
  return final;
}

function exitFor(status: string | undefined, io: CliIO): number {
  if (status === undefined) {
    println(io.stderr, 'error: the event stream ended before the run finished');
    return EXIT_FAILED;
  }
  println(io.stdout, `Final status: ${status}`);
  return status === 'completed' ? EXIT_OK : EXIT_FAILED;
}

export async function run(conn: Connection, file: string, options: { input?: string; requestId?: string }, io: CliIO): Promise<number> {
  let variables: Record<string, unknown> = {};
  if (options.input !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(options.input);
    } catch (err) {
      throw new UsageError(`--input is not valid JSON: ${(err as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError('--input must be a JSON object');
    variables = parsed as Record<string, unknown>;
  }
  const { text, format } = await readDocument(file);
  const workflow = await conn.unary('createWorkflow', { document: text, format: format === 'json' ? 'DOCUMENT_FORMAT_JSON' : 'DOCUMENT_FORMAT_YAML' });
  println(io.stdout, `Workflow ${String(workflow.name)} (${String(workflow.definitionHash)}, ${String(workflow.totalSteps)} steps)`);
  const request: Msg = { workflow: workflow.name, definitionHash: workflow.definitionHash, variables: toProtoStruct(variables) };
  if (options.requestId !== undefined) request.requestId = options.requestId;
  const status = await follow(conn, 'executeWorkflow', { run: request }, io);
  return exitFor(status, io);
}

export async function watch(conn: Connection, runId: string, afterSeq: number | undefined, io: CliIO): Promise<number> {
  const request: Msg = { name: runName(runId) };
  if (afterSeq !== undefined) request.afterSeq = String(afterSeq);
  const status = await follow(conn, 'watchRun', request, io);
  return exitFor(status, io);
}

export async function get(conn: Connection, runId: string, io: CliIO): Promise<number> {
  const found = await conn.unary('getRun', { name: runName(runId) });
  for (const line of formatRun(found)) println(io.stdout, line);
  return EXIT_OK;
}

export async function list(conn: Connection, options: { workflow?: string; status?: string }, io: CliIO): Promise<number> {
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
  if (runs.length === 0) {
    println(io.stdout, 'No runs.');
    return EXIT_OK;
  }
  for (const r of runs) println(io.stdout, formatRunLine(r));
  println(io.stdout, `${runs.length} run${runs.length === 1 ? '' : 's'}`);
  return EXIT_OK;
}

export async function cancel(conn: Connection, runId: string, io: CliIO): Promise<number> {
  const cancelled = await conn.unary('cancelRun', { name: runName(runId), reason: 'cancelled with jafw cancel' });
  println(io.stdout, `Run ${String(cancelled.name)}: ${runStatus(cancelled.status)}`);
  return EXIT_OK;
}
