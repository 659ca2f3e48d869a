/**
 * What attempts share: their types, the scopes they run children in, and how user functions are
 * called under a step's cancellation.
 */
import type { Agent } from '../agents/agent.ts';
import type { ModelProvider } from '../agents/model-provider.ts';
import type { WorkflowContext } from '../context.ts';
import type { StepDefinition, StepDefinitionOf, StepKind } from '../definition/types.ts';
import { ErrorCode, stepError, toStepError, type StepError } from '../errors.ts';
import { cancellationError, raceCancellation, type Cancellation } from './cancellation.ts';
import type { NewStepEvent, StepResultData } from './events.ts';
import type { BudgetGate } from '../agents/budget.ts';
import type { ToolExecutor } from './executor.ts';

export type AttemptOutcome =
  | { readonly status: 'ok'; readonly output: unknown; readonly ctx: WorkflowContext; readonly metadata?: Record<string, unknown> }
  | { readonly status: 'skipped'; readonly ctx: WorkflowContext; readonly metadata?: Record<string, unknown> }
  | { readonly status: 'error'; readonly error: StepError; readonly metadata?: Record<string, unknown> };

export interface StepScope {
  /** Path of the enclosing step (undefined at top level); events name it as the parent. */
  readonly parent: string | undefined;
  /** Prefix of this step's path: the parent's path, or `loop[i]` inside a loop iteration. */
  readonly prefix: string | undefined;
  readonly cancellation: Cancellation;
  /** Top-level steps: the workflow loop emits the finish event after error handling. */
  readonly deferFinish?: boolean;
  /** Merged into the step's result metadata (e.g. `replaces` for a replacement step). */
  readonly metadata?: Readonly<Record<string, unknown>>;
  /** Rebuilding the context of a recorded composite: children replay their records and nothing runs. */
  readonly replayOnly?: boolean;
}

export interface StepOutcome {
  readonly result: StepResultData;
  readonly ctx: WorkflowContext;
  /** The result was already recorded (a parent's retry, or recovery): nothing ran and no event was emitted. */
  readonly replayed: boolean;
}

/** What an attempt may use from its run. */
export interface AttemptEnv {
  readonly runId: string;
  readonly executor: ToolExecutor;
  readonly modelProvider: ModelProvider | undefined;
  /** Set when every agent must use this provider whatever its own (a replay). */
  readonly forcedModelProvider: ModelProvider | undefined;
  /** The run's agents by name: handoff targets named by a string resolve here. */
  readonly agents: ReadonlyMap<string, Agent>;
  readonly maxOutputBytes: number;
  /** Record each model response as a `model_responded` event. */
  readonly recordModelResponses: boolean;
  /** The token budgets an agent step's requests must fit (its own over all attempts, and the run's). */
  budgetFor(path: string, stepLimit: number | undefined): BudgetGate;
  /** Emits a running step's own event (streamed output, a recorded model response). */
  emitStepEvent(event: NewStepEvent): void;
  executeStep(def: StepDefinition, ctx: WorkflowContext, scope: StepScope): Promise<StepOutcome>;
}

export interface Attempt<K extends StepKind> {
  readonly env: AttemptEnv;
  readonly def: StepDefinitionOf<K>;
  readonly ctx: WorkflowContext;
  readonly path: string;
  readonly attempt: number;
  readonly cancellation: Cancellation;
}

export function isLeaf(kind: StepKind): kind is 'tool' | 'agent' {
  return kind === 'tool' || kind === 'agent';
}

export function childScope<K extends StepKind>(a: Attempt<K>, prefix: string, cancellation: Cancellation = a.cancellation): StepScope {
  return { parent: a.path, prefix, cancellation };
}

export function replayScope<K extends StepKind>(a: Attempt<K>, prefix: string): StepScope {
  return { parent: a.path, prefix, cancellation: a.cancellation, replayOnly: true };
}

export type Evaluated<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: StepError };

/**
 * Calls a user function under the attempt's cancellation: a throw becomes USER_FUNCTION_ERROR naming
 * the step and the function, and a function that never settles is abandoned when the step times out
 * or is cancelled.
 */
export function callUser<T>(fn: () => T | Promise<T>, what: string, path: string, cancellation: Cancellation): Promise<Evaluated<T>> {
  const failed = (err: unknown): Evaluated<T> => ({ ok: false, error: stepError(ErrorCode.USER_FUNCTION_ERROR, `step ${path}: ${what} threw: ${toStepError(err).message}`) });
  let produced: T | Promise<T>;
  try {
    produced = fn();
  } catch (err) {
    return Promise.resolve(failed(err));
  }
  if (typeof (produced as PromiseLike<T> | null)?.then !== 'function') return Promise.resolve({ ok: true, value: produced as T });
  return raceCancellation(
    Promise.resolve(produced).then((value): Evaluated<T> => ({ ok: true, value }), failed),
    cancellation,
    (): Evaluated<T> => ({ ok: false, error: cancellationError(cancellation) }),
  );
}
