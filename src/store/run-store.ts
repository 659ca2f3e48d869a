/**
 * Where runs live. The engine appends every RunEvent here and acknowledges a step only once the store
 * says its events are durable; recovery reads them back. Asynchronous throughout, so that a networked
 * store (PostgreSQL) fits the same interface; nothing here assumes SQLite.
 */
import type { RunEvent, RunStatus } from '../engine/events.ts';

export interface RunRecord {
  readonly runId: string;
  readonly workflowId: string;
  /** The definition version the run is pinned to. */
  readonly definitionHash: string;
  readonly status: RunStatus;
  readonly createdAt: number;
  readonly finishedAt: number | undefined;
  /** Seq of the last event stored. */
  readonly lastSeq: number;
}

export interface DefinitionRecord {
  readonly workflowId: string;
  /** sha256 of `document`. */
  readonly hash: string;
  /** Canonical JSON: a declarative document (executable), or a description of a code-defined workflow (not). */
  readonly document: string;
  /** 'declarative': `document` compiles back to the workflow, so its runs survive without a `register`. */
  readonly kind: DefinitionKind;
  readonly createdAt: number;
}

export type DefinitionKind = 'code' | 'declarative';

/** The version of a workflow that runs start from by default (set by the coordinator's CreateWorkflow). */
export interface PublishedWorkflow {
  readonly workflowId: string;
  readonly definitionHash: string;
  readonly publishedAt: number;
}

/** A StartRun request_id, kept so that a retried request starts nothing new (as long as its run is kept). */
export interface RunRequestRecord {
  readonly requestId: string;
  /** Identifies the request's content: the same request_id with other content is refused. */
  readonly fingerprint: string;
  readonly runId: string;
  readonly createdAt: number;
}

export interface RunQuery {
  readonly workflowId?: string;
  readonly status?: RunStatus;
  /** Runs created before this run (for paging: pass the last run of the previous page). */
  readonly before?: { readonly createdAt: number; readonly runId: string };
  readonly limit: number;
}

export interface RunStore {
  /** A human-readable name for errors and logs (a file path, a connection string without secrets). */
  readonly location: string;
  /** Records a definition version; idempotent by (workflowId, hash). */
  putDefinition(definition: DefinitionRecord): Promise<void>;
  getDefinition(workflowId: string, hash: string): Promise<DefinitionRecord | undefined>;
  /** Makes a stored definition version the workflow's published (default) one. */
  publishWorkflow(published: PublishedWorkflow): Promise<void>;
  getPublishedWorkflow(workflowId: string): Promise<PublishedWorkflow | undefined>;
  /** Published workflows ordered by id, after `after` (for paging). */
  listPublishedWorkflows(query: { readonly after?: string; readonly limit: number }): Promise<PublishedWorkflow[]>;
  /**
   * Stores a request_id unless one is stored already; either way returns the stored record (compare its
   * runId with yours to know which). Records are deleted with their run by `pruneFinished`.
   */
  claimRunRequest(request: RunRequestRecord): Promise<RunRequestRecord>;
  /** Forgets a request_id whose run never started, so that the request may be retried. */
  releaseRunRequest(requestId: string, runId: string): Promise<void>;
  /**
   * Appends a run's events, in seq order, after those already stored. Resolves when they are durable
   * (committed); a later append of the same run is never durable before an earlier one. A `run_started`
   * event creates the run. Rejects with a StoreError if they cannot be stored; the run's later appends
   * then reject too, until it is loaded again by recovery.
   */
  append(events: readonly RunEvent[]): Promise<void>;
  /**
   * A hint from a lone run about to wait for its appends, which nothing else will join and nobody
   * watches: the store may commit them as soon as the current tick's work is done rather than a loop
   * turn later. Optional; a store that batches differently may ignore it.
   */
  commitSoon?(): void;
  /** Events of a run with seq > afterSeq, in order. */
  readEvents(runId: string, afterSeq?: number): Promise<RunEvent[]>;
  /**
   * A run's first event (its run_started) and its last one, without reading what lies between: what a
   * run listing shows (input, status, error) costs two rows however long the run's history is.
   */
  readFirstAndLastEvents(runId: string): Promise<{ readonly first: RunEvent; readonly last: RunEvent } | undefined>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  listRuns(query: RunQuery): Promise<RunRecord[]>;
  /** Runs that were started and never finished: what recovery resumes. */
  unfinishedRuns(): Promise<RunRecord[]>;
  /** Deletes runs (and their events) that finished before `finishedBefore` (epoch ms); returns how many. */
  pruneFinished(finishedBefore: number): Promise<number>;
  close(): Promise<void>;
}

export const StoreErrorCode = {
  /** The store cannot be opened (missing directory, permissions, not a database). */
  STORE_OPEN_FAILED: 'STORE_OPEN_FAILED',
  /** Another process holds the store. */
  STORE_LOCKED: 'STORE_LOCKED',
  /** The store is read-only. */
  STORE_READ_ONLY: 'STORE_READ_ONLY',
  /** The disk is full: new work fails, nothing already committed is lost. */
  STORE_FULL: 'STORE_FULL',
  /** The store's schema is newer than this build understands. */
  STORE_SCHEMA_TOO_NEW: 'STORE_SCHEMA_TOO_NEW',
  /** Any other write failure. */
  STORE_WRITE_FAILED: 'STORE_WRITE_FAILED',
  /** A run's earlier events failed to store, so its later ones are refused until recovery. */
  STORE_RUN_BROKEN: 'STORE_RUN_BROKEN',
  /** An invariant of the event log was violated (a duplicate seq or step result): a bug. */
  STORE_CONFLICT: 'STORE_CONFLICT',
} as const;

export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly retryable = false;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

/** Statuses a run never leaves. */
export function isFinished(status: RunStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}
