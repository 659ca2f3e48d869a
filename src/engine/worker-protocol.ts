/**
 * The contract between the engine (main thread) and the Piscina worker entry (`workers/tool-worker.ts`).
 * The worker imports only this module and `src/errors.ts`. It never throws: every failure comes back as
 * a `ToolOutcome` of kind `error`, so nothing depends on how structuredClone treats error classes.
 */
import { ErrorCode, stepError, type StepError } from '../errors.ts';

/** What every tool receives beside its arguments, inline or in the pool. */
export interface ToolContext {
  /** `{runId}:{stepPath}`: stable across attempts and restarts, so a tool can deduplicate effects. */
  readonly idempotencyKey: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** Aborted on timeout or cancellation. (A pool tool is stopped by terminating its worker instead.) */
  readonly signal: AbortSignal;
  readonly runId: string;
  readonly stepPath: string;
  /** The run's `WorkflowContext.userContext` (a structured clone of it in the pool). */
  readonly userContext: unknown;
}

/** One task for a pool thread, as the engine asks for it. */
export interface ToolTask {
  readonly moduleUrl: string;
  readonly args: unknown;
  readonly runId: string;
  readonly stepPath: string;
  readonly attempt: number;
  readonly userContext: unknown;
  readonly maxOutputBytes: number;
}

/**
 * A ToolTask as it crosses to the thread. Cloning an object graph costs several times what cloning one
 * string does (E2 measured about a tenth of its throughput on it), so the scalar fields travel as one
 * length-prefixed string, and the arguments and userContext are added only when there are any: the
 * common `{}` arguments and absent userContext are rebuilt on the other side.
 */
export type WireTask = string | readonly [header: string, args: unknown, userContext: unknown];

export function encodeTask(task: ToolTask): WireTask {
  const { moduleUrl, runId } = task;
  const header = `${task.attempt},${task.maxOutputBytes},${moduleUrl.length},${runId.length};${moduleUrl}${runId}${task.stepPath}`;
  return task.userContext === undefined && isEmptyPlainObject(task.args) ? header : [header, task.args, task.userContext];
}

export function decodeTask(wire: WireTask): ToolTask {
  const header = typeof wire === 'string' ? wire : wire[0];
  const attemptEnd = header.indexOf(',');
  const maxBytesEnd = header.indexOf(',', attemptEnd + 1);
  const urlLengthEnd = header.indexOf(',', maxBytesEnd + 1);
  const fieldsEnd = header.indexOf(';', urlLengthEnd + 1);
  const attempt = Number(header.slice(0, attemptEnd));
  const maxOutputBytes = Number(header.slice(attemptEnd + 1, maxBytesEnd));
  const urlLength = Number(header.slice(maxBytesEnd + 1, urlLengthEnd));
  const runIdLength = Number(header.slice(urlLengthEnd + 1, fieldsEnd));
  const urlStart = fieldsEnd + 1;
  const runIdStart = urlStart + urlLength;
  const pathStart = runIdStart + runIdLength;
  return {
    moduleUrl: header.slice(urlStart, runIdStart),
    runId: header.slice(runIdStart, pathStart),
    stepPath: header.slice(pathStart),
    attempt,
    maxOutputBytes,
    args: typeof wire === 'string' ? {} : wire[1],
    userContext: typeof wire === 'string' ? undefined : wire[2],
  };
}

function isEmptyPlainObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return false;
  // Structured clone copies only own enumerable string keys, the ones for...in visits here.
  for (const _key in value) return false;
  return true;
}

/**
 * Kept small because it is cloned across threads once per step: the output as JSON (undefined for no
 * output) on success, `{ error }` on failure.
 */
export type ToolOutcome = string | undefined | { readonly error: StepError };

/**
 * Several fast tasks sent to one thread as one Piscina task, so that they pay for one thread hop
 * instead of one each (see PoolToolExecutor). `control` is shared memory with one TaskSlot per task:
 * the thread and the engine each claim a pending task with a compare-and-swap, the thread to run it,
 * the engine to skip it (cancelled before its turn), so exactly one of them wins.
 */
export interface WireBatch {
  readonly tasks: readonly WireTask[];
  readonly control: Int32Array;
}

/** Per task of a batch: its outcome (null when it was skipped) and how long it ran, in ms. */
export interface BatchOutcome {
  readonly outcomes: readonly (ToolOutcome | null)[];
  readonly ms: readonly number[];
}

/** Where a batch's task is, in its `control` slot. */
export const TaskSlot = {
  pending: 0,
  /** Claimed by the engine: cancelled before its turn; the thread skips it. */
  skipped: 1,
  /** Claimed by the thread: running now (a thread fault is this task's). */
  started: 2,
  done: 3,
} as const;

export function isWireBatch(wire: WireTask | WireBatch): wire is WireBatch {
  return typeof wire === 'object' && !Array.isArray(wire);
}

export function idempotencyKey(runId: string, stepPath: string): string {
  return `${runId}:${stepPath}`;
}

export type EncodedOutput =
  | { readonly ok: true; readonly output: unknown; readonly json: string | undefined }
  | { readonly ok: false; readonly error: StepError };

/**
 * Outputs cross threads, the store and the wire as JSON, so they are normalised to JSON once, where they
 * are produced: a live run and a replayed one see the same values (a Date becomes its ISO string).
 */
export function encodeOutput(value: unknown, maxBytes: number): EncodedOutput {
  if (value === undefined) return { ok: true, output: undefined, json: undefined };
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    return { ok: false, error: stepError(ErrorCode.OUTPUT_NOT_SERIALIZABLE, `output is not JSON-serialisable: ${(err as Error).message}`) };
  }
  if (json === undefined) {
    return { ok: false, error: stepError(ErrorCode.OUTPUT_NOT_SERIALIZABLE, `output of type ${typeof value} is not JSON-serialisable`) };
  }
  // UTF-8 takes at most 3 bytes per UTF-16 unit, so short strings skip the byte count.
  if (json.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > maxBytes) {
      return {
        ok: false,
        error: stepError(ErrorCode.OUTPUT_TOO_LARGE, `output is ${bytes} bytes as JSON; the limit is ${maxBytes} bytes`, { bytes, limit: maxBytes }),
      };
    }
  }
  const isPrimitive = value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
  return { ok: true, output: isPrimitive ? value : deepFreeze(JSON.parse(json)), json };
}

/** An output as the engine keeps it: parsed and frozen, so no step or branch can change another's view. */
export function decodeOutput(json: string | undefined): unknown {
  return json === undefined ? undefined : deepFreeze(JSON.parse(json));
}

export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  return value;
}
