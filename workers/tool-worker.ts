/**
 * Piscina worker entry: loads a tool module (cached per thread), runs it, and returns a ToolOutcome.
 * Imports only the worker protocol and the error helpers. Cancellation and timeouts terminate this
 * thread from the pool side, so a tool here sees a signal that never aborts.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  BatchControl,
  decodeTask,
  encodeOutput,
  idempotencyKey,
  isWireBatch,
  type BatchOutcome,
  type ToolContext,
  type ToolOutcome,
  type ToolTask,
  type WireBatch,
  type WireTask,
} from '../src/engine/worker-protocol.ts';
import { ErrorCode, stepError, toStepError } from '../src/errors.ts';

type ToolFunction = (args: unknown, ctx: ToolContext) => unknown;

const loaded = new Map<string, Promise<ToolFunction>>();
/** Tools whose module has loaded: the hot path skips a promise per task. */
const ready = new Map<string, ToolFunction>();
const neverAborted = new AbortController().signal;

function loadTool(moduleUrl: string): Promise<ToolFunction> {
  let tool = loaded.get(moduleUrl);
  if (tool === undefined) {
    tool = importModule(moduleUrl).then((mod: { default?: unknown }) => {
      const exported = mod.default;
      if (typeof exported === 'function') return exported as ToolFunction;
      const execute = (exported as { execute?: unknown } | undefined)?.execute;
      if (typeof execute === 'function') return (execute as ToolFunction).bind(exported);
      throw new TypeError(`default export is ${exported === undefined ? 'missing' : typeof exported}; expected a function or an object with execute()`);
    });
    // A module that failed to load is not cached: the next task retries the import.
    tool.then(
      (fn) => ready.set(moduleUrl, fn),
      () => loaded.delete(moduleUrl),
    );
    loaded.set(moduleUrl, tool);
  }
  return tool;
}

/**
 * Compiled tool modules load with import(). TypeScript sources (tests, tsx) cannot: on Node 20 the
 * ESM loader hooks that tsx registers do not reach worker threads, but its require hook does.
 */
async function importModule(moduleUrl: string): Promise<{ default?: unknown }> {
  try {
    return (await import(moduleUrl)) as { default?: unknown };
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_UNKNOWN_FILE_EXTENSION' || !moduleUrl.endsWith('.ts')) throw err;
    return createRequire(import.meta.url)(fileURLToPath(moduleUrl)) as { default?: unknown };
  }
}

/**
 * Not async: a loaded tool that returns synchronously is answered without a promise of this function's
 * own (the thread is a shared resource; E2 counts its per-task cost).
 */
export default function runTool(wire: WireTask | WireBatch): ToolOutcome | Promise<ToolOutcome> | BatchOutcome | Promise<BatchOutcome> {
  return isWireBatch(wire) ? runBatch(wire) : runOne(wire);
}

function runOne(wire: WireTask): ToolOutcome | Promise<ToolOutcome> {
  const task = decodeTask(wire);
  const tool = ready.get(task.moduleUrl);
  return tool === undefined ? loadAndRun(task) : run(tool, task);
}

/**
 * Runs a batch's tasks one after another, noting in shared memory which one is running (so that the
 * engine knows which task a thread fault belongs to) and skipping those the engine cancelled before
 * they started.
 */
function runBatch({ tasks, control }: WireBatch): BatchOutcome | Promise<BatchOutcome> {
  const outcomes: (ToolOutcome | null)[] = new Array<ToolOutcome | null>(tasks.length).fill(null);
  const ms: number[] = new Array<number>(tasks.length).fill(0);
  const from = (first: number): BatchOutcome | Promise<BatchOutcome> => {
    for (let i = first; i < tasks.length; i++) {
      // Store, then load: with the engine's store-then-load on cancel, one side always sees the other.
      Atomics.store(control, BatchControl.running, i);
      if (Atomics.load(control, BatchControl.skipSlot(i)) !== 0) continue;
      const started = performance.now();
      const produced = runOne(tasks[i]!);
      if (isPromiseLike(produced)) {
        return Promise.resolve(produced).then((outcome) => {
          outcomes[i] = outcome;
          ms[i] = performance.now() - started;
          return from(i + 1);
        });
      }
      outcomes[i] = produced;
      ms[i] = performance.now() - started;
    }
    Atomics.store(control, BatchControl.running, tasks.length);
    return { outcomes, ms };
  };
  return from(0);
}

async function loadAndRun(task: ToolTask): Promise<ToolOutcome> {
  let tool: ToolFunction;
  try {
    tool = await loadTool(task.moduleUrl);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { error: stepError(ErrorCode.TOOL_MODULE_INVALID, `cannot load tool module ${task.moduleUrl}: ${reason}`) };
  }
  return run(tool, task);
}

function run(tool: ToolFunction, task: ToolTask): ToolOutcome | Promise<ToolOutcome> {
  let produced: unknown;
  try {
    produced = tool(task.args, {
      idempotencyKey: idempotencyKey(task.runId, task.stepPath),
      attempt: task.attempt,
      signal: neverAborted,
      runId: task.runId,
      stepPath: task.stepPath,
      userContext: task.userContext,
    });
  } catch (err) {
    return { error: toStepError(err) };
  }
  if (!isPromiseLike(produced)) return encode(produced, task.maxOutputBytes);
  return Promise.resolve(produced).then(
    (output) => encode(output, task.maxOutputBytes),
    (err: unknown): ToolOutcome => ({ error: toStepError(err) }),
  );
}

function encode(output: unknown, maxOutputBytes: number): ToolOutcome {
  try {
    const encoded = encodeOutput(output, maxOutputBytes);
    return encoded.ok ? encoded.json : { error: encoded.error };
  } catch (err) {
    return { error: toStepError(err) };
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}
