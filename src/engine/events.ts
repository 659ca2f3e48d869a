/**
 * Every state change of a run is one of these events, numbered by a per-run `seq` (1, 2, 3... with no
 * gaps). A run is the fold of its events (`RunProjection`); stores persist them, streams deliver them,
 * logs and metrics observe them.
 */
import type { StepKind } from '../definition/types.ts';
import type { StepError } from '../errors.ts';

export type StepStatus = 'running' | 'completed' | 'failed' | 'skipped' | 'cancelled';
export type RunStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
export type FinishedStepStatus = Exclude<StepStatus, 'running'>;

/** A step's result as data: JSON-safe, as stored and streamed. */
export interface StepResultData {
  readonly stepId: string;
  readonly path: string;
  readonly kind: StepKind;
  readonly status: FinishedStepStatus;
  readonly output?: unknown;
  readonly error?: StepError;
  readonly executionTimeMs: number;
  readonly attempts: number;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

interface EventBase {
  readonly seq: number;
  readonly runId: string;
  /** Wall-clock time, epoch milliseconds. */
  readonly at: number;
}

/** What a run started from: enough to rebuild its WorkflowContext on recovery. */
export interface RunInput {
  readonly workflowId: string;
  readonly userContext: unknown;
  readonly initialData: Readonly<Record<string, unknown>>;
  readonly variables: Readonly<Record<string, unknown>>;
  readonly metadata: Readonly<Record<string, unknown>>;
}

export interface RunStartedEvent extends EventBase {
  readonly type: 'run_started';
  readonly workflowId: string;
  readonly workflowName: string;
  /** The definition version the run is pinned to. */
  readonly definitionHash: string;
  /** Top-level steps in the definition. */
  readonly totalSteps: number;
  readonly input: RunInput;
  /** Model tokens (prompt + completion) the whole run may use; absent: unlimited. */
  readonly tokenBudget?: number;
  /** The run records its model responses (`model_responded` events). */
  readonly recordModelResponses?: boolean;
  /** The run replays the model responses recorded by this run. */
  readonly replayModelResponsesFrom?: string;
}

export interface StepStartedEvent extends EventBase {
  readonly type: 'step_started';
  readonly path: string;
  readonly parent: string | undefined;
  readonly stepId: string;
  readonly kind: StepKind;
  readonly attempt: number;
}

export interface StepRetryingEvent extends EventBase {
  readonly type: 'step_retrying';
  readonly path: string;
  /** The attempt that failed. */
  readonly attempt: number;
  readonly error: StepError;
  readonly delayMs: number;
  /** Who asked for the retry: the step's retry policy or the workflow's error handler. */
  readonly reason: 'retry_policy' | 'error_handler';
  /** The failed attempt's model tokens (agent steps): a recovered run's budgets count them. */
  readonly usage?: AttemptUsage;
}

export interface AttemptUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export interface StepFinishedEvent extends EventBase {
  readonly type: 'step_completed' | 'step_failed' | 'step_skipped' | 'step_cancelled';
  readonly path: string;
  readonly parent: string | undefined;
  readonly result: StepResultData;
}

export interface RunFinishedEvent extends EventBase {
  readonly type: 'run_completed' | 'run_failed' | 'run_cancelled';
  readonly error?: StepError & { readonly stepPath?: string };
}

/** Text an agent step's model streamed, in order: the step's partial output (the final output comes with its result). */
export interface StepOutputDeltaEvent extends EventBase {
  readonly type: 'step_output_delta';
  readonly path: string;
  readonly attempt: number;
  /** The model call within the attempt (1-based, across handoffs). */
  readonly turn: number;
  readonly agent: string;
  readonly text: string;
}

/** A model response of an agent step, recorded (when the run records them) so that a replay can serve it offline. */
export interface ModelRespondedEvent extends EventBase {
  readonly type: 'model_responded';
  readonly path: string;
  readonly attempt: number;
  readonly turn: number;
  /** The agent that asked (after handoffs, the active one). */
  readonly agent: string;
  readonly model: string | undefined;
  readonly response: RecordedModelResponse;
}

/** A ModelResponse as JSON data. */
export interface RecordedModelResponse {
  readonly content: string | null;
  readonly toolCalls?: readonly { readonly id: string; readonly name: string; readonly arguments: string }[];
  readonly usage?: { readonly promptTokens: number; readonly completionTokens: number };
}

export type RunEvent = RunStartedEvent | StepStartedEvent | StepRetryingEvent | StepFinishedEvent | StepOutputDeltaEvent | ModelRespondedEvent | RunFinishedEvent;

/** A running step's own events, before the run stamps them. */
export type NewStepEvent = Omit<StepOutputDeltaEvent, 'seq' | 'runId' | 'at'> | Omit<ModelRespondedEvent, 'seq' | 'runId' | 'at'>;

/** An event before the run assigns its seq, runId and time. */
export type NewRunEvent = RunEvent extends infer E ? (E extends RunEvent ? Omit<E, 'seq' | 'runId' | 'at'> : never) : never;

export const finishedEventType: Readonly<Record<FinishedStepStatus, StepFinishedEvent['type']>> = {
  completed: 'step_completed',
  failed: 'step_failed',
  skipped: 'step_skipped',
  cancelled: 'step_cancelled',
};
