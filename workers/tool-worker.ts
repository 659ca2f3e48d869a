/**
 * Piscina worker entry: loads a tool module (cached per thread), runs it, and returns a ToolOutcome.
 * Imports only the worker protocol and the error helpers. Cancellation and timeouts terminate this
 * thread from the pool side, so a tool here sees a signal that never aborts.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
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
  TaskSlot,
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
 * Runs a batch's tasks one after another. Each task's slot in the shared `control` array says where it
 * is: the thread claims it (pending -> started) before running it, and skips it if the engine has
 * claimed it first (pending -> skipped, the task was cancelled before its turn); so the engine knows
 * which task a thread fault belongs to. A task's time excludes loading its module.
 */
function runBatch({ tasks, control }: WireBatch): BatchOutcome | Promise<BatchOutcome> {
  const outcomes = new Array<ToolOutcome | null>(tasks.length).fill(null);
  const ms = new Array<number>(tasks.length).fill(0);
  const finish = (i: number, outcome: ToolOutcome, took: number): void => {
    outcomes[i] = outcome;
    ms[i] = took;
    Atomics.store(control, i, TaskSlot.done);
  };
  const from = (first: number): BatchOutcome | Promise<BatchOutcome> => {
    for (let i = first; i < tasks.length; i++) {
      if (Atomics.compareExchange(control, i, TaskSlot.pending, TaskSlot.started) !== TaskSlot.pending) continue;
      const task = decodeTask(tasks[i]!);
      const tool = ready.get(task.moduleUrl);
      const timed = tool === undefined ? loadThenTime(task) : timedRun(tool, task);
      if (isPromiseLike(timed)) {
        return Promise.resolve(timed).then(([outcome, took]) => {
          finish(i, outcome, took);
          return from(i + 1);
        });
      }
      finish(i, timed[0], timed[1]);
    }
    return { outcomes, ms };
  };
  return from(0);
}

type Timed = readonly [outcome: ToolOutcome, ms: number];

function timedRun(tool: ToolFunction, task: ToolTask): Timed | Promise<Timed> {
  const started = performance.now();
  const produced = run(tool, task);
  if (!isPromiseLike(produced)) return [produced, performance.now() - started];
  return Promise.resolve(produced).then((outcome): Timed => [outcome, performance.now() - started]);
}

async function loadThenTime(task: ToolTask): Promise<Timed> {
  const tool = await loadFor(task);
  return typeof tool === 'function' ? timedRun(tool, task) : [tool, 0];
}

async function loadAndRun(task: ToolTask): Promise<ToolOutcome> {
  const tool = await loadFor(task);
  return typeof tool === 'function' ? run(tool, task) : tool;
}

/** The task's tool, its module loaded (cached per thread); or the outcome of a module that cannot load. */
async function loadFor(task: ToolTask): Promise<ToolFunction | ToolOutcome> {
  try {
    return await loadTool(task.moduleUrl);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { error: stepError(ErrorCode.TOOL_MODULE_INVALID, `cannot load tool module ${task.moduleUrl}: ${reason}`) };
  }
}

function run(tool: ToolFunction, task: ToolTask): ToolOutcome | Promise<ToolOutcome> {
  let produced: unknown;
  let pending: boolean;
  try {
    produced = tool(task.args, {
      idempotencyKey: idempotencyKey(task.runId, task.stepPath),
      attempt: task.attempt,
      signal: neverAborted,
      runId: task.runId,
      stepPath: task.stepPath,
      userContext: task.userContext,
    });
    // Inside the try: reading `then` runs the returned object's getter, which may throw.
    pending = isPromiseLike(produced);
  } catch (err) {
    return { error: toStepError(err) };
  }
  if (!pending) return encode(produced, task.maxOutputBytes);
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
