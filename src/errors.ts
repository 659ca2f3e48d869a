/**
 * Errors are data. Anything that crosses a thread, the store or the wire is a `StepError`
 * (`{ code, message, retryable, details? }`); retry decisions read `retryable`, never class identity.
 * This module is imported by the Piscina worker too, so it must stay free of engine imports.
 */

export const ErrorCode = {
  /** A tool threw (or rejected) with an ordinary error. */
  TOOL_ERROR: 'TOOL_ERROR',
  /** A step attempt ran past its timeout and was aborted. */
  TIMEOUT: 'TIMEOUT',
  /** The run (or the step's parent) was cancelled while the step was running. */
  CANCELLED: 'CANCELLED',
  /** Tool arguments did not match the tool's `parameters` JSON Schema. */
  INVALID_TOOL_ARGS: 'INVALID_TOOL_ARGS',
  /** A condition, params/input/context function or error handler threw. */
  USER_FUNCTION_ERROR: 'USER_FUNCTION_ERROR',
  /** A step's input could not be built from the context (a non-string agent input, variables JSON cannot hold). */
  INVALID_INPUT: 'INVALID_INPUT',
  /** A pool worker exited (process.exit, fatal error) while running the step's tool. */
  WORKER_CRASHED: 'WORKER_CRASHED',
  /** A pool worker ran out of its heap limit while running the step's tool. */
  WORKER_OUT_OF_MEMORY: 'WORKER_OUT_OF_MEMORY',
  /** The pool's task queue was full. */
  POOL_QUEUE_FULL: 'POOL_QUEUE_FULL',
  /** The pool is closed (the engine was closed). */
  POOL_CLOSED: 'POOL_CLOSED',
  /** A tool module could not be loaded in the worker, or its default export is not a tool. */
  TOOL_MODULE_INVALID: 'TOOL_MODULE_INVALID',
  /** A step's output is not JSON-serialisable (a function, a cycle, a BigInt...). */
  OUTPUT_NOT_SERIALIZABLE: 'OUTPUT_NOT_SERIALIZABLE',
  /** A step's output exceeds the output size limit. */
  OUTPUT_TOO_LARGE: 'OUTPUT_TOO_LARGE',
  /** A parallel step failed: a branch failed under fail_fast, or too few succeeded. */
  PARALLEL_FAILED: 'PARALLEL_FAILED',
  /** A loop's body failed in one iteration. */
  LOOP_FAILED: 'LOOP_FAILED',
  /** An agent did not produce a final answer within its turn limit. */
  MAX_TURNS_EXCEEDED: 'MAX_TURNS_EXCEEDED',
  /** The model provider failed. */
  MODEL_ERROR: 'MODEL_ERROR',
  /** An agent's final answer did not match its output schema. */
  AGENT_OUTPUT_INVALID: 'AGENT_OUTPUT_INVALID',
  /** The model asked for a handoff to an agent it may not hand off to, or that no registry knows. */
  AGENT_HANDOFF_INVALID: 'AGENT_HANDOFF_INVALID',
  /** The model endpoint answered 429 (rate limit); `details.retryAfterMs` carries its Retry-After. */
  MODEL_RATE_LIMITED: 'MODEL_RATE_LIMITED',
  /** The model endpoint answered 5xx (or 408/409), or could not be reached. */
  MODEL_UNAVAILABLE: 'MODEL_UNAVAILABLE',
  /** The model endpoint refused the credentials (401/403). */
  MODEL_AUTH_FAILED: 'MODEL_AUTH_FAILED',
  /** The conversation does not fit the model's context window. */
  MODEL_CONTEXT_LENGTH_EXCEEDED: 'MODEL_CONTEXT_LENGTH_EXCEEDED',
  /** The model endpoint rejected the request (other 4xx: unknown model, bad parameters, no model configured). */
  MODEL_INVALID_REQUEST: 'MODEL_INVALID_REQUEST',
  /** The model endpoint answered with a body that is not a chat completion (malformed JSON, no choices). */
  MODEL_RESPONSE_INVALID: 'MODEL_RESPONSE_INVALID',
  /** A model request would go over the step's or the run's token budget; it was not sent. */
  BUDGET_EXCEEDED: 'BUDGET_EXCEEDED',
  /** A replay run asked for a model response its recording does not have. */
  MODEL_RESPONSE_NOT_RECORDED: 'MODEL_RESPONSE_NOT_RECORDED',
  /** A recovered run is pinned to a definition version that is not registered on this engine. */
  DEFINITION_NOT_REGISTERED: 'DEFINITION_NOT_REGISTERED',
  /** The workflow definition is invalid (see `WorkflowDefinitionError.issues`). */
  INVALID_DEFINITION: 'INVALID_DEFINITION',
  /** A bug: an invariant of the engine did not hold. */
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface StepError {
  readonly code: string;
  readonly message: string;
  readonly retryable: boolean;
  readonly details?: Readonly<Record<string, unknown>>;
}

/** Which codes are retryable when the thrower did not say. */
const retryableByDefault: Readonly<Record<ErrorCode, boolean>> = {
  TOOL_ERROR: true,
  TIMEOUT: true,
  CANCELLED: false,
  INVALID_TOOL_ARGS: false,
  USER_FUNCTION_ERROR: false,
  INVALID_INPUT: false,
  WORKER_CRASHED: true,
  WORKER_OUT_OF_MEMORY: false,
  POOL_QUEUE_FULL: true,
  POOL_CLOSED: false,
  TOOL_MODULE_INVALID: false,
  OUTPUT_NOT_SERIALIZABLE: false,
  OUTPUT_TOO_LARGE: false,
  PARALLEL_FAILED: true,
  LOOP_FAILED: true,
  MAX_TURNS_EXCEEDED: false,
  MODEL_ERROR: true,
  AGENT_OUTPUT_INVALID: true,
  AGENT_HANDOFF_INVALID: true, // the model's mistake: another attempt may choose differently
  MODEL_RATE_LIMITED: true,
  MODEL_UNAVAILABLE: true,
  MODEL_AUTH_FAILED: false,
  MODEL_CONTEXT_LENGTH_EXCEEDED: false, // the same conversation will not fit next time either
  MODEL_INVALID_REQUEST: false,
  MODEL_RESPONSE_INVALID: true, // most often a truncated body or a proxy's error page; the retry policy bounds it
  BUDGET_EXCEEDED: false, // the budget does not grow back
  MODEL_RESPONSE_NOT_RECORDED: false, // the recording will not grow either
  DEFINITION_NOT_REGISTERED: false,
  INVALID_DEFINITION: false,
  INTERNAL: false,
};

export function stepError(
  code: ErrorCode,
  message: string,
  details?: Record<string, unknown>,
  retryable: boolean = retryableByDefault[code],
): StepError {
  return details === undefined ? { code, message, retryable } : { code, message, retryable, details };
}

/** Thrown by a tool (inline or in the pool) to stop retries at once. */
export class NonRetryableError extends Error {
  readonly retryable = false;
  readonly code: string;
  constructor(message: string, options?: { code?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NonRetryableError';
    this.code = options?.code ?? ErrorCode.TOOL_ERROR;
  }
}

/**
 * Converts anything thrown into a StepError. Reads `code` and `retryable` properties if the thrower set
 * them (so a NonRetryableError from another realm, e.g. a worker, still stops retries).
 */
export function toStepError(thrown: unknown, fallbackCode: ErrorCode = ErrorCode.TOOL_ERROR): StepError {
  if (isStepError(thrown)) return thrown;
  if (thrown instanceof Error) {
    const withProps = thrown as Error & { code?: unknown; retryable?: unknown };
    const code = typeof withProps.code === 'string' && withProps.code !== '' ? withProps.code : fallbackCode;
    const known = (retryableByDefault as Record<string, boolean | undefined>)[code];
    const retryable = typeof withProps.retryable === 'boolean' ? withProps.retryable : (known ?? true);
    const message = thrown.message === '' ? thrown.name : thrown.message;
    return { code, message, retryable };
  }
  const message = typeof thrown === 'string' ? thrown : `non-Error value thrown: ${safeDescribe(thrown)}`;
  return stepError(fallbackCode, message);
}

export function isStepError(value: unknown): value is StepError {
  if (typeof value !== 'object' || value === null || value instanceof Error) return false;
  const v = value as Record<string, unknown>;
  return typeof v.code === 'string' && typeof v.message === 'string' && typeof v.retryable === 'boolean';
}

function safeDescribe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

export interface DefinitionIssue {
  /** Where the problem is: a step path (`fulfillment/update_crm`) or an option name. */
  readonly path: string;
  readonly code: string;
  readonly message: string;
}

/**
 * A workflow that cannot run as defined (unknown tool, duplicate step id, limit exceeded...).
 * Thrown by `execute` before the first step starts, so nothing runs.
 */
export class WorkflowDefinitionError extends Error {
  readonly code = ErrorCode.INVALID_DEFINITION;
  readonly issues: readonly DefinitionIssue[];
  constructor(issues: readonly DefinitionIssue[]) {
    super(
      issues.length === 1
        ? `invalid workflow definition: ${formatIssue(issues[0]!)}`
        : `invalid workflow definition (${issues.length} problems): ${issues.map(formatIssue).join('; ')}`,
    );
    this.name = 'WorkflowDefinitionError';
    this.issues = issues;
  }
}

function formatIssue(issue: DefinitionIssue): string {
  return `${issue.path}: ${issue.message} [${issue.code}]`;
}
