/**
 * The one mapping from this project's error codes to gRPC status codes. Every RPC handler ends a failed
 * call through `toGrpcStatus`, never by letting an error escape (grpc-js would report UNKNOWN).
 *
 * Failures inside a run are not RPC errors: a tool failing or a step timing out is run state, streamed
 * as a StepResult/RunFinished carrying the StepError. The engine codes below reach an RPC status only
 * when the operation itself fails with them (e.g. INVALID_DEFINITION on CreateWorkflow, POOL_CLOSED while
 * shutting down); the table still covers every code so that nothing falls through to a guess.
 *
 * Principles (Google's code.proto litmus test, AIP-193/194, ecosystem.md §1.1):
 * - INVALID_ARGUMENT: the request is wrong whatever the system state (bad definition, bad arguments).
 * - FAILED_PRECONDITION: the system state must be fixed before a retry helps (run already finished,
 *   tool module broken, store read-only or of a newer schema).
 * - RESOURCE_EXHAUSTED: a queue, a size or a budget ran out.
 * - UNAVAILABLE: transient; the only code clients retry automatically (shutting down, store locked,
 *   a watcher that fell behind and must resume from its last seq).
 * - ABORTED: retry at a higher level (a worker crashed under the step).
 * - UNKNOWN: user code (a tool, a condition) failed and we cannot say more.
 * - INTERNAL: a bug: an invariant did not hold.
 */
import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import { WatchErrorCode } from '../engine/event-bus.ts';
import { ErrorCode, WorkflowDefinitionError } from '../errors.ts';
import { StoreErrorCode } from '../store/run-store.ts';
import { encodeRichStatus, fieldPath, STATUS_DETAILS_METADATA_KEY, type FieldViolation } from './rich-status.ts';

/** Codes only the coordinator raises (the gRPC layer), beside the engine's, the store's and the watcher's. */
export const CoordinatorErrorCode = {
  /** A request field is malformed: a resource name, a page token, a page size, a Struct. */
  INVALID_REQUEST: 'INVALID_REQUEST',
  /** No workflow (or workflow version) by that name. */
  WORKFLOW_NOT_FOUND: 'WORKFLOW_NOT_FOUND',
  /** No run by that name (the same code as WatchErrorCode.RUN_NOT_FOUND, for GetRun/CancelRun...). */
  RUN_NOT_FOUND: 'RUN_NOT_FOUND',
  /** StartRun with a run_id that exists (and was not started by the same request_id). */
  RUN_ALREADY_EXISTS: 'RUN_ALREADY_EXISTS',
  /** A request_id reused with a different request. */
  REQUEST_ID_REUSED: 'REQUEST_ID_REUSED',
  /** The operation needs an unfinished run (CancelRun on a finished run). */
  RUN_ALREADY_FINISHED: 'RUN_ALREADY_FINISHED',
  /** WatchRun's after_seq is past the last event of a finished run. */
  AFTER_SEQ_OUT_OF_RANGE: 'AFTER_SEQ_OUT_OF_RANGE',
  /** The events after after_seq are no longer kept (pruned): re-read the run with GetRun. */
  HISTORY_TRUNCATED: 'HISTORY_TRUNCATED',
  /** Too many runs in progress (or a per-client quota) to start another now. */
  TOO_MANY_RUNS: 'TOO_MANY_RUNS',
  /** The coordinator is shutting down: retry against it (or another instance) later. */
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  /** No (valid) bearer token. */
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  /** A valid caller not allowed to do this. */
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  /** An RPC this coordinator does not implement (yet). */
  NOT_IMPLEMENTED: 'NOT_IMPLEMENTED',
} as const;

export type CoordinatorErrorCode = (typeof CoordinatorErrorCode)[keyof typeof CoordinatorErrorCode];

/** Every code that has a fixed status. */
export type MappedErrorCode = ErrorCode | StoreErrorCode | WatchErrorCode | CoordinatorErrorCode;

/**
 * The table. Typed as a Record over the union of all code objects, so adding a code to ErrorCode,
 * StoreErrorCode, WatchErrorCode or CoordinatorErrorCode without a row here fails to compile, and the `satisfies` makes
 * a row for a code that does not exist an excess-property error.
 */
export const grpcStatusByCode: Readonly<Record<MappedErrorCode, status>> = Object.freeze({
  // --- engine (src/errors.ts) ---
  TOOL_ERROR: status.UNKNOWN, // a tool's own failure: we cannot say more than it did
  TIMEOUT: status.DEADLINE_EXCEEDED,
  CANCELLED: status.CANCELLED,
  INVALID_TOOL_ARGS: status.INVALID_ARGUMENT,
  USER_FUNCTION_ERROR: status.UNKNOWN, // a condition/params function or handler threw
  INVALID_INPUT: status.INVALID_ARGUMENT, // the run input cannot feed the step
  WORKER_CRASHED: status.ABORTED, // transient, but retry the run (higher level), not blindly the call
  WORKER_OUT_OF_MEMORY: status.RESOURCE_EXHAUSTED,
  POOL_QUEUE_FULL: status.RESOURCE_EXHAUSTED,
  POOL_CLOSED: status.UNAVAILABLE, // the engine is shutting down
  TOOL_MODULE_INVALID: status.FAILED_PRECONDITION, // the deployment must be fixed
  OUTPUT_NOT_SERIALIZABLE: status.INTERNAL, // a server-side tool broke its contract
  OUTPUT_TOO_LARGE: status.RESOURCE_EXHAUSTED,
  PARALLEL_FAILED: status.UNKNOWN, // the causes are the branches' errors (in details)
  LOOP_FAILED: status.UNKNOWN, // the cause is the body's error (in details)
  MAX_TURNS_EXCEEDED: status.RESOURCE_EXHAUSTED, // the agent's turn budget ran out
  MODEL_ERROR: status.UNAVAILABLE, // the model provider failed, transiently as far as we know
  AGENT_OUTPUT_INVALID: status.UNKNOWN, // the model's answer did not fit its schema
  AGENT_HANDOFF_INVALID: status.UNKNOWN, // the model named a handoff target it may not use
  MODEL_RATE_LIMITED: status.RESOURCE_EXHAUSTED, // the endpoint's quota ran out for now
  MODEL_UNAVAILABLE: status.UNAVAILABLE, // transient upstream failure
  // Not UNAUTHENTICATED: the engine's credentials for the model are wrong, not the RPC caller's.
  MODEL_AUTH_FAILED: status.FAILED_PRECONDITION, // the deployment's API key must be fixed
  MODEL_CONTEXT_LENGTH_EXCEEDED: status.RESOURCE_EXHAUSTED, // a size ran out: the context window
  MODEL_INVALID_REQUEST: status.FAILED_PRECONDITION, // the agent's model/parameters or the endpoint must be fixed
  MODEL_RESPONSE_INVALID: status.UNKNOWN, // the endpoint answered something that is not a chat completion
  BUDGET_EXCEEDED: status.RESOURCE_EXHAUSTED, // a budget ran out
  MODEL_RESPONSE_NOT_RECORDED: status.FAILED_PRECONDITION, // the replay needs a recording that has the response
  DEFINITION_NOT_REGISTERED: status.FAILED_PRECONDITION, // register the version first
  INVALID_DEFINITION: status.INVALID_ARGUMENT, // WorkflowDefinitionError
  INTERNAL: status.INTERNAL,
  // --- store (src/store/run-store.ts) ---
  STORE_OPEN_FAILED: status.FAILED_PRECONDITION, // path/permissions/file must be fixed by an operator
  STORE_LOCKED: status.UNAVAILABLE, // another process holds it; may be released
  STORE_READ_ONLY: status.FAILED_PRECONDITION,
  STORE_FULL: status.RESOURCE_EXHAUSTED, // code.proto: "the entire file system is out of space"
  STORE_SCHEMA_TOO_NEW: status.FAILED_PRECONDITION, // upgrade this build
  STORE_WRITE_FAILED: status.UNAVAILABLE, // transient I/O; StartRun is idempotent with request_id
  STORE_RUN_BROKEN: status.FAILED_PRECONDITION, // refused until the run is recovered
  STORE_CONFLICT: status.INTERNAL, // an event-log invariant broke: a bug
  // --- watching runs (src/engine/event-bus.ts) ---
  RUN_NOT_FOUND: status.NOT_FOUND, // also a coordinator code
  WATCH_TOO_SLOW: status.RESOURCE_EXHAUSTED, // its buffer ran out: resume with after_seq = the last seq received
  // --- coordinator ---
  INVALID_REQUEST: status.INVALID_ARGUMENT,
  WORKFLOW_NOT_FOUND: status.NOT_FOUND,
  RUN_ALREADY_EXISTS: status.ALREADY_EXISTS,
  REQUEST_ID_REUSED: status.FAILED_PRECONDITION, // use a new request_id
  RUN_ALREADY_FINISHED: status.FAILED_PRECONDITION,
  AFTER_SEQ_OUT_OF_RANGE: status.OUT_OF_RANGE,
  HISTORY_TRUNCATED: status.FAILED_PRECONDITION, // re-snapshot with GetRun
  TOO_MANY_RUNS: status.RESOURCE_EXHAUSTED,
  SHUTTING_DOWN: status.UNAVAILABLE,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  NOT_IMPLEMENTED: status.UNIMPLEMENTED,
} satisfies Record<MappedErrorCode, status>);

/** Metadata keys a failed call carries (ASCII values), readable by clients in any language. */
export const ERROR_CODE_METADATA_KEY = 'jaf-error-code';
export const RETRYABLE_METADATA_KEY = 'jaf-retryable';
/** For INVALID_DEFINITION: the DefinitionIssue list as UTF-8 JSON (binary key: values may be non-ASCII). */
export const DEFINITION_ISSUES_METADATA_KEY = 'jaf-definition-issues-bin';

/**
 * The status for an error code. A code outside the table (one a tool chose itself) is UNKNOWN: it is
 * user code's failure, and we know nothing more about it.
 */
export function grpcStatusForCode(code: string): status {
  return Object.hasOwn(grpcStatusByCode, code) ? grpcStatusByCode[code as MappedErrorCode] : status.UNKNOWN;
}

/**
 * What a handler passes to `callback(...)` (unary) or `call.destroy(...)`/`emit('error', ...)` (streams)
 * for anything thrown: a coded error (Error or StepError with a string `code`) gets its mapped status;
 * an uncoded Error is a bug, INTERNAL. The engine code travels in metadata (`jaf-error-code`,
 * `jaf-retryable`), and a WorkflowDefinitionError's issues in `jaf-definition-issues-bin`.
 */
export function toGrpcStatus(thrown: unknown): Partial<StatusObject> & { code: status; details: string; metadata: Metadata } {
  const metadata = new Metadata();
  const code = errorCodeOf(thrown);
  const message = messageOf(thrown);
  if (code === undefined) {
    metadata.set(ERROR_CODE_METADATA_KEY, ErrorCode.INTERNAL);
    return { code: status.INTERNAL, details: message, metadata };
  }
  metadata.set(ERROR_CODE_METADATA_KEY, asciiOnly(code));
  const retryable = (thrown as { retryable?: unknown }).retryable;
  if (typeof retryable === 'boolean') metadata.set(RETRYABLE_METADATA_KEY, String(retryable));
  let fieldViolations: FieldViolation[] | undefined;
  if (thrown instanceof WorkflowDefinitionError) {
    metadata.set(DEFINITION_ISSUES_METADATA_KEY, Buffer.from(JSON.stringify(thrown.issues), 'utf8'));
    fieldViolations = thrown.issues.map((issue) => ({ field: fieldPath('document', issue.path), description: issue.message, reason: issue.code }));
  } else {
    const field = (thrown as { field?: unknown }).field;
    if (typeof field === 'string' && field !== '') fieldViolations = [{ field, description: message, reason: code }];
  }
  const grpcCode = grpcStatusForCode(code);
  const info: { reason: string; metadata: Record<string, string> } = { reason: code, metadata: typeof retryable === 'boolean' ? { retryable: String(retryable) } : {} };
  metadata.set(STATUS_DETAILS_METADATA_KEY, encodeRichStatus({ code: grpcCode, message, errorInfo: info, ...(fieldViolations === undefined ? {} : { fieldViolations }) }));
  return { code: grpcCode, details: message, metadata };
}

function errorCodeOf(thrown: unknown): string | undefined {
  if (typeof thrown !== 'object' || thrown === null) return undefined;
  const code = (thrown as { code?: unknown }).code;
  return typeof code === 'string' && code !== '' ? code : undefined;
}

function messageOf(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message === '' ? thrown.name : thrown.message;
  if (typeof thrown === 'object' && thrown !== null && typeof (thrown as { message?: unknown }).message === 'string') {
    return (thrown as { message: string }).message;
  }
  return typeof thrown === 'string' ? thrown : 'unknown error';
}

/** Metadata values must be printable ASCII; a tool's own code might not be. */
function asciiOnly(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}
