/**
 * Cross-language interop: a Python client (stubs generated from our protos by Debian's
 * python3-grpc-tools, run on Debian's python3-grpcio) against the real coordinator as `jafw serve`
 * builds it (startServer: SQLite store in a temp dir, the built-in and order tools, bearer token) on
 * 127.0.0.1:0. Each scenario is one run of test/grpc/python/interop_client.py, which prints one JSON
 * line; the assertions here compare it with what grpc-js reports for the same runs.
 *
 * Needs /usr/bin/python3 with `grpc` and `grpc_tools` (not the pyenv python on PATH: the Debian
 * packages are installed for the system interpreter). Without them the suite is skipped, unless
 * JAF_REQUIRE_INTEROP=1 (CI sets it) makes it fail instead.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Connection, type Msg } from '../../src/cli/client.ts';
import { startServer, type Server } from '../../src/cli/serve.ts';
import { fromProtoStruct, fromProtoValue, type ProtoStruct, type ProtoValue } from '../../src/grpc/proto.ts';
import { quietLogger } from '../helpers/logging.ts';

const execFileAsync = promisify(execFile);

const PYTHON = '/usr/bin/python3';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLIENT_DIR = fileURLToPath(new URL('./python/', import.meta.url));
const CLIENT = join(CLIENT_DIR, 'interop_client.py');
const SERVICE_PROTO = 'proto/jaf/workflows/v1/workflow_service.proto';
const ORDER_YAML = join(ROOT, 'examples', 'order-processing.yaml');
const ORDER_VARIABLES = join(ROOT, 'examples', 'order.json');
const TOKEN = 'interop-token';
/** Limits for each Python process: the client's own RPC deadlines are 30 s, so this only catches hangs. */
const PYTHON_TIMEOUT_MS = 60_000;
const PYTHON_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
const TEST_TIMEOUT_MS = 90_000;
const SETUP_TIMEOUT_MS = 120_000;
const ORDER_STEPS = ['validate_order', 'inventory_check', 'payment_processing', 'fulfillment_check', 'fulfillment_agent'];
const REQUIRE_INTEROP = process.env.JAF_REQUIRE_INTEROP === '1';

type Availability = { readonly ok: true; readonly protoInclude: string } | { readonly ok: false; readonly reason: string };

/** Whether `python` imports grpc and grpc_tools; if so, the directory of grpc_tools' bundled well-known protos. */
function probePython(python: string): Availability {
  try {
    const out = execFileSync(python, ['-c', 'import os, grpc, grpc_tools; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))'], {
      encoding: 'utf8',
      timeout: 30_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { ok: true, protoInclude: out.trim() };
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    const lastLine = stderr.split('\n').at(-1);
    return { ok: false, reason: `${python} with grpc and grpc_tools is not available (${lastLine || (err as Error).message}); install python3-grpcio python3-grpc-tools` };
  }
}

const python = probePython(PYTHON);
if (!python.ok) {
  console.warn(`python-interop: ${python.reason}. ${REQUIRE_INTEROP ? 'JAF_REQUIRE_INTEROP=1: the suite FAILS.' : 'Skipping the suite (set JAF_REQUIRE_INTEROP=1 to fail instead).'}`);
}

/** One RunEvent as interop_client.py reports it. */
interface PyEvent {
  seq: number;
  run: string;
  kind: 'run_started' | 'step_started' | 'step_retrying' | 'step_finished' | 'run_finished';
  step_id?: string;
  path?: string;
  step_kind?: string;
  status?: string;
  output?: unknown;
  error_code?: string | null;
  attempts?: number;
}

interface PyStepResult {
  step_id: string;
  path: string;
  step_kind: string;
  status: string;
  output: unknown;
  error_code: string | null;
  attempts: number;
}

type PyResult = Record<string, unknown> & { ok: boolean; scenario: string };

let dir: string;
let generated: string;
let server: Server | undefined;
let ts: Connection | undefined;

/** Runs one scenario of the Python client; its single JSON line, which must say ok. */
async function runClient<T>(scenario: string, options: readonly string[] = [], token = TOKEN): Promise<T & PyResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONPATH: generated, PYTHONDONTWRITEBYTECODE: '1', PYTHONNOUSERSITE: '1' };
  delete env.PYTHONHOME;
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(PYTHON, [CLIENT, server!.address, token, scenario, ...options], {
      cwd: ROOT,
      env,
      timeout: PYTHON_TIMEOUT_MS,
      maxBuffer: PYTHON_MAX_OUTPUT_BYTES,
      encoding: 'utf8',
    }));
  } catch (err) {
    const failed = err as { code?: unknown; signal?: unknown; stdout?: unknown; stderr?: unknown };
    throw new Error(`interop_client.py ${scenario} failed (exit ${String(failed.code)}, signal ${String(failed.signal)})\nstdout: ${String(failed.stdout)}\nstderr: ${String(failed.stderr)}`);
  }
  const lines = stdout.split('\n').filter((line) => line.trim() !== '');
  expect(lines, `one JSON line from ${scenario}`).toHaveLength(1);
  const result = JSON.parse(lines[0]!) as T & PyResult;
  expect(result).toMatchObject({ ok: true, scenario });
  return result;
}

async function python3(args: readonly string[]): Promise<void> {
  await execFileAsync(PYTHON, args, { cwd: ROOT, timeout: PYTHON_TIMEOUT_MS, encoding: 'utf8' });
}

/** The run's events as grpc-js sees them, in the Python client's shape (kind in snake_case). */
async function watchFromTs(run: string): Promise<Pick<PyEvent, 'seq' | 'kind' | 'step_id' | 'path' | 'step_kind' | 'status'>[]> {
  const events: Msg[] = [];
  await ts!.stream('watchRun', { name: run, afterSeq: 0 }, (message) => events.push(message));
  return events.map((event) => {
    const kind = String(event.event).replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) as PyEvent['kind'];
    const body = event[String(event.event)] as Msg;
    const out: Pick<PyEvent, 'seq' | 'kind' | 'step_id' | 'path' | 'step_kind' | 'status'> = { seq: Number(event.seq), kind };
    if (kind === 'step_started' || kind === 'step_finished') Object.assign(out, { step_id: body.stepId, path: body.path });
    if (kind === 'step_finished') out.step_kind = String(body.kind);
    if (kind === 'step_finished' || kind === 'run_finished') out.status = String(body.status);
    return out;
  });
}

function expectWellFormed(events: readonly PyEvent[], run: string): void {
  expect(events.map((e) => e.seq)).toEqual(events.map((_e, i) => i + 1));
  expect(events[0]!.kind).toBe('run_started');
  expect(events.at(-1)!.kind).toBe('run_finished');
  expect(events.filter((e) => e.kind === 'run_finished')).toHaveLength(1);
  expect(events.every((e) => e.run === run)).toBe(true);
}

/** Top-level steps (no parent in the path) as [id, status], in the order they finished. */
function topLevelSteps(events: readonly PyEvent[]): [string | undefined, string | undefined][] {
  return events.filter((e) => e.kind === 'step_finished' && !e.path!.includes('/')).map((e) => [e.step_id, e.status]);
}

describe('availability probe', () => {
  it('reports a missing interpreter as unavailable, with the reason', () => {
    const missing = probePython(join(tmpdir(), 'no-such-dir', 'python3'));
    expect(missing.ok).toBe(false);
    expect(missing.ok ? '' : missing.reason).toMatch(/not available.*python3-grpcio/);
  });
});

if (!python.ok && REQUIRE_INTEROP) {
  // A failing test rather than a failing hook, so CI's "N failed" count includes it.
  describe('Python interop, required (JAF_REQUIRE_INTEROP=1)', () => {
    it(`${PYTHON} imports grpc and grpc_tools`, () => {
      throw new Error(`${python.reason}; JAF_REQUIRE_INTEROP=1 requires the interop suite to run`);
    });
  });
}

const SUITE = `Python client (${PYTHON}, python3-grpcio) against the coordinator`;
describe.runIf(python.ok)(python.ok ? SUITE : `${SUITE} (SKIPPED: ${python.reason})`, () => {
  /** From scenario (a): the run watched from Python, and its events (later scenarios reuse it). */
  let watchedRun: { run: string; events: PyEvent[] } | undefined;
  const watched = (): { run: string; events: PyEvent[] } => {
    if (watchedRun === undefined) throw new Error('scenario (a) must run first: it registers the workflow and watches the run the others reuse');
    return watchedRun;
  };

  beforeAll(async () => {
    const protoInclude = python.ok ? python.protoInclude : '';
    dir = mkdtempSync(join(tmpdir(), 'jaf-py-interop-'));
    generated = join(dir, 'generated');
    mkdirSync(generated);
    // As the proto's header says: -I proto, plus grpc_tools' bundled google/protobuf/*.proto.
    await python3(['-m', 'grpc_tools.protoc', '-I', 'proto', '-I', protoInclude, `--python_out=${generated}`, `--grpc_python_out=${generated}`, SERVICE_PROTO]);
    await python3(['-m', 'grpc_tools.protoc', '-I', CLIENT_DIR, '-I', protoInclude, `--python_out=${generated}`, join(CLIENT_DIR, 'rpc_status.proto')]);
    server = await startServer({ host: '127.0.0.1', port: 0, db: join(dir, 'interop.db'), token: TOKEN, logger: quietLogger() }, { stdout: { write: () => true }, stderr: { write: () => true } });
    ts = connect(server.address, TOKEN);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    ts?.close();
    await server?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('(a) CreateWorkflow(order-processing.yaml), StartRun, WatchRun from 0: the whole run, seqs 1..n, completed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const result = await runClient<{ workflow: Msg; run: string; start_status: string; events: PyEvent[]; final_status: string }>('create-start-watch', [
      '--document',
      ORDER_YAML,
      '--variables',
      ORDER_VARIABLES,
    ]);
    expect(result.workflow).toMatchObject({ name: 'workflows/ecommerce_order_processing', total_steps: 5 });
    expect(result.workflow.definition_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(result.run).toMatch(/^runs\/./);
    expect(['RUN_STATUS_PENDING', 'RUN_STATUS_RUNNING', 'RUN_STATUS_COMPLETED']).toContain(result.start_status);
    expectWellFormed(result.events, result.run);
    expect(result.final_status).toBe('RUN_STATUS_COMPLETED');
    expect(result.events.at(-1)!.status).toBe('RUN_STATUS_COMPLETED');
    expect(topLevelSteps(result.events)).toEqual(ORDER_STEPS.map((id) => [id, 'STEP_STATUS_COMPLETED']));
    // The four fulfillment branches ran (nested under the parallel step).
    const finishedIds = result.events.filter((e) => e.kind === 'step_finished').map((e) => e.step_id);
    expect(finishedIds).toEqual(expect.arrayContaining(['update_inventory', 'create_shipping_label', 'send_confirmation_email', 'update_crm']));
    // grpc-js sees the same events, field for field.
    const fromTs = await watchFromTs(result.run);
    expect(result.events.map(({ seq, kind, step_id, path, step_kind, status }) => ({ seq, kind, step_id, path, step_kind, status }))).toEqual(fromTs);
    watchedRun = { run: result.run, events: result.events };
  });

  it('(b) WatchRun resumed at a middle seq starts at after_seq+1, with no gap and no duplicate', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { run, events } = watched();
    const last = events.length;
    const cut = Math.floor(last / 2);
    expect(cut).toBeGreaterThan(1);
    const resumed = await runClient<{ seqs: number[]; kinds: string[] }>('resume', ['--run', run, '--after-seq', String(cut)]);
    expect(resumed.seqs[0]).toBe(cut + 1);
    expect(new Set(resumed.seqs).size).toBe(resumed.seqs.length);
    expect(resumed.seqs).toEqual(Array.from({ length: last - cut }, (_v, i) => cut + 1 + i));
    expect(resumed.kinds).toEqual(events.slice(cut).map((e) => e.kind));
    // At the end: nothing more, and the stream still ends OK.
    const atEnd = await runClient<{ seqs: number[] }>('resume', ['--run', run, '--after-seq', String(last)]);
    expect(atEnd.seqs).toEqual([]);
  });

  it('(c) without the token (or with a wrong one), unary and streaming calls are UNAUTHENTICATED', { timeout: TEST_TIMEOUT_MS }, async () => {
    const result = await runClient<{ no_token: string; wrong_token: string; stream_no_token: string; details: string }>('unauthenticated', [], '');
    expect(result).toMatchObject({ no_token: 'UNAUTHENTICATED', wrong_token: 'UNAUTHENTICATED', stream_no_token: 'UNAUTHENTICATED' });
    expect(result.details).toMatch(/bearer token/i);
  });

  it('(d) ExecuteWorkflow streams a new run to its end', { timeout: TEST_TIMEOUT_MS }, async () => {
    const previous = watched();
    const result = await runClient<{ run: string; events: PyEvent[]; final_status: string }>('execute', [
      '--workflow',
      'workflows/ecommerce_order_processing',
      '--variables',
      ORDER_VARIABLES,
    ]);
    expect(result.run).not.toBe(previous.run);
    expectWellFormed(result.events, result.run);
    expect(result.final_status).toBe('RUN_STATUS_COMPLETED');
    expect(topLevelSteps(result.events)).toEqual(ORDER_STEPS.map((id) => [id, 'STEP_STATUS_COMPLETED']));
  });

  it('(e) GetRun from Python returns the step results grpc-js and the event stream report', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { run, events } = watched();
    const result = await runClient<{ status: string; last_seq: number; total_steps: number; has_finish_time: boolean; variables: unknown; step_results: PyStepResult[] }>(
      'get-run',
      ['--run', run],
    );
    const fromTs = await ts!.unary('getRun', { name: run });
    expect(result).toMatchObject({ status: 'RUN_STATUS_COMPLETED', last_seq: events.length, total_steps: 5, has_finish_time: true });
    expect(result.variables).toEqual(fromProtoStruct(fromTs.variables as ProtoStruct));
    expect(result.variables).toEqual(JSON.parse(readFileSync(ORDER_VARIABLES, 'utf8')));
    const tsResults: PyStepResult[] = (fromTs.stepResults as Msg[]).map((r) => ({
      step_id: String(r.stepId),
      path: String(r.path),
      step_kind: String(r.kind),
      status: String(r.status),
      output: fromProtoValue(r.output as ProtoValue | null) ?? null,
      error_code: r.error === null ? null : String((r.error as Msg).code),
      attempts: Number(r.attempts),
    }));
    expect(result.step_results.length).toBeGreaterThanOrEqual(ORDER_STEPS.length);
    expect(result.step_results).toEqual(tsResults);
    // The same results, in the same order, as the step_finished events Python watched.
    const streamed = events
      .filter((e) => e.kind === 'step_finished')
      .map(({ step_id, path, step_kind, status, output, error_code, attempts }) => ({ step_id, path, step_kind, status, output, error_code, attempts }));
    expect(result.step_results).toEqual(streamed);
    const validate = result.step_results.find((r) => r.path === 'validate_order');
    expect(validate).toMatchObject({ step_kind: 'STEP_KIND_TOOL', status: 'STEP_STATUS_COMPLETED', attempts: 1, error_code: null });
    expect(validate!.output).toMatchObject({ order_valid: true });
  });

  it('(f) a malformed definition is INVALID_ARGUMENT, with the issues in the trailers', { timeout: TEST_TIMEOUT_MS }, async () => {
    const unknownTool = join(dir, 'unknown-tool.yaml');
    writeFileSync(unknownTool, 'id: broken\nsteps:\n  - id: a\n    tool: no_such_tool\n');
    const result = await runClient<{
      code: string;
      details: string;
      trailing_metadata_keys: string[];
      jaf_error_code: string | null;
      definition_issues: { path: string }[] | null;
      status_details: { code: number; details: { type: string; value?: Msg }[] } | null;
    }>('invalid-definition', ['--document', unknownTool]);
    expect(result.code).toBe('INVALID_ARGUMENT');
    expect(result.jaf_error_code).toBe('INVALID_DEFINITION');
    expect(result.trailing_metadata_keys).toEqual(expect.arrayContaining(['jaf-error-code', 'jaf-definition-issues-bin']));
    expect(result.definition_issues!.map((issue) => issue.path)).toContain('/steps/0/tool');
    if (result.trailing_metadata_keys.includes('grpc-status-details-bin')) {
      // Rich error details (google.rpc.Status, AIP-193): the same status, and what its details say.
      const rich = result.status_details!;
      expect(rich).toMatchObject({ code: 3, message: result.details });
      expect(rich.details.length).toBeGreaterThan(0);
      const errorInfo = rich.details.find((d) => d.type === 'google.rpc.ErrorInfo');
      if (errorInfo !== undefined) expect(errorInfo.value).toMatchObject({ reason: 'INVALID_DEFINITION' });
      const badRequest = rich.details.find((d) => d.type === 'google.rpc.BadRequest');
      if (badRequest !== undefined) {
        const fields = (badRequest.value!.field_violations as { field: string }[]).map((v) => v.field);
        expect(fields.some((field) => /steps\W+0\W+tool/.test(field))).toBe(true);
      }
    } else {
      expect(result.status_details).toBeNull();
    }

    const badYaml = join(dir, 'bad-yaml.yaml');
    writeFileSync(badYaml, 'id: [unclosed\n');
    const yaml = await runClient<{ code: string; jaf_error_code: string | null }>('invalid-definition', ['--document', badYaml]);
    expect(yaml).toMatchObject({ code: 'INVALID_ARGUMENT', jaf_error_code: 'INVALID_DEFINITION' });
  });
});
