import { ErrorCode, isStepError, stepError, toStepError, type StepError } from '../errors.ts';
import type { Tool } from '../tools/tool.ts';
import { encodeOutput } from './worker-protocol.ts';

/** One call of one tool, as the engine asks for it. */
export interface ToolInvocation {
  readonly tool: Tool;
  readonly args: unknown;
  readonly runId: string;
  readonly stepPath: string;
  readonly attempt: number;
  readonly userContext: unknown;
  /** Aborted with a StepError reason (TIMEOUT or CANCELLED). */
  readonly signal: AbortSignal;
  readonly maxOutputBytes: number;
}

export type InvocationOutcome =
  | { readonly kind: 'ok'; readonly output: unknown; readonly outputJson: string | undefined }
  | { readonly kind: 'error'; readonly error: StepError };

/** Runs tools. The engine holds one; it routes inline tools to the main thread and module tools to the pool. */
export interface ToolExecutor {
  run(invocation: ToolInvocation): Promise<InvocationOutcome>;
  close(): Promise<void>;
}

export function idempotencyKey(runId: string, stepPath: string): string {
  return `${runId}:${stepPath}`;
}

/** The error a step reports when its signal fired: the StepError the aborter gave, else CANCELLED. */
export function abortError(signal: AbortSignal): StepError {
  return isStepError(signal.reason) ? signal.reason : stepError(ErrorCode.CANCELLED, 'step cancelled');
}

/**
 * Runs an inline tool on the main thread. The tool gets the signal; if it ignores it, the step still
 * ends at the abort (the tool's late result is dropped), so a step never outlives its timeout.
 */
export async function runInline(invocation: ToolInvocation): Promise<InvocationOutcome> {
  const { tool, signal } = invocation;
  if (tool.execution.kind !== 'inline') throw new Error(`runInline called for pool tool ${tool.name}`);
  if (signal.aborted) return { kind: 'error', error: abortError(signal) };
  let produced: unknown;
  try {
    const pending = tool.execution.execute(invocation.args, {
      idempotencyKey: idempotencyKey(invocation.runId, invocation.stepPath),
      attempt: invocation.attempt,
      signal,
      runId: invocation.runId,
      stepPath: invocation.stepPath,
      userContext: invocation.userContext,
    });
    produced = isPromiseLike(pending) ? await raceAbort(pending, signal) : pending;
  } catch (err) {
    return { kind: 'error', error: signal.aborted ? abortError(signal) : toStepError(err) };
  }
  if (signal.aborted) return { kind: 'error', error: abortError(signal) };
  const encoded = encodeOutput(produced, invocation.maxOutputBytes);
  return encoded.ok ? { kind: 'ok', output: encoded.output, outputJson: encoded.json } : { kind: 'error', error: encoded.error };
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

const aborted = Symbol('aborted');

function raceAbort<T>(pending: PromiseLike<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(aborted);
    signal.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
