import { ErrorCode, isStepError, stepError, toStepError, type StepError } from '../errors.ts';
import type { Tool } from '../tools/tool.ts';
import { cancellationError, raceCancellation, type Cancellation } from './cancellation.ts';
import { encodeOutput, idempotencyKey, type ToolContext } from './worker-protocol.ts';

/** One call of one tool, as the engine asks for it. */
export interface ToolInvocation {
  readonly tool: Tool;
  readonly args: unknown;
  readonly runId: string;
  readonly stepPath: string;
  readonly attempt: number;
  readonly userContext: unknown;
  /** Aborted with a StepError reason (TIMEOUT or CANCELLED). */
  readonly cancellation: Cancellation;
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

/** The error a step reports when its signal fired: the StepError the aborter gave, else CANCELLED. */
export function abortError(signal: AbortSignal): StepError {
  return isStepError(signal.reason) ? signal.reason : stepError(ErrorCode.CANCELLED, 'step cancelled');
}

/**
 * Runs an inline tool on the main thread. The tool gets a signal; if it ignores it, the step still
 * ends at the abort (the tool's late result is dropped), so a step never outlives its timeout.
 */
export async function runInline(invocation: ToolInvocation): Promise<InvocationOutcome> {
  const { tool, cancellation } = invocation;
  if (tool.execution.kind !== 'inline') throw new Error(`runInline called for pool tool ${tool.name}`);
  if (cancellation.aborted) return { kind: 'error', error: cancellationError(cancellation) };
  let produced: unknown;
  try {
    const pending = tool.execution.execute(invocation.args, new InlineToolContext(invocation));
    produced = isPromiseLike(pending) ? await raceCancellation(pending, cancellation, () => undefined) : pending;
  } catch (err) {
    return { kind: 'error', error: cancellation.aborted ? cancellationError(cancellation) : toStepError(err) };
  }
  if (cancellation.aborted) return { kind: 'error', error: cancellationError(cancellation) };
  const encoded = encodeOutput(produced, invocation.maxOutputBytes);
  return encoded.ok ? { kind: 'ok', output: encoded.output, outputJson: encoded.json } : { kind: 'error', error: encoded.error };
}

/** The context an inline tool receives; its AbortSignal is made only if the tool reads it. */
class InlineToolContext implements ToolContext {
  readonly attempt: number;
  readonly runId: string;
  readonly stepPath: string;
  readonly userContext: unknown;
  readonly #cancellation: Cancellation;

  constructor(invocation: ToolInvocation) {
    this.attempt = invocation.attempt;
    this.runId = invocation.runId;
    this.stepPath = invocation.stepPath;
    this.userContext = invocation.userContext;
    this.#cancellation = invocation.cancellation;
  }

  get idempotencyKey(): string {
    return idempotencyKey(this.runId, this.stepPath);
  }

  get signal(): AbortSignal {
    return this.#cancellation.signal;
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}
