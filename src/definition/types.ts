/**
 * The one definition model. The TypeScript step classes (and, later, declarative documents) compile
 * to this frozen tagged union; the engine only ever sees these nodes.
 */
import type { Agent } from '../agents/agent.ts';
import type { WorkflowContext } from '../context.ts';
import type { Tool } from '../tools/tool.ts';

export type Awaitable<T> = T | Promise<T>;

export type Condition = (ctx: WorkflowContext) => Awaitable<boolean>;
export type LoopCondition = (ctx: WorkflowContext, iteration: number) => Awaitable<boolean>;

/** Retries with exponential backoff and full jitter, capped. `maxAttempts` counts the first attempt. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly backoffCoefficient: number;
  readonly maxDelayMs: number;
}

/** For the default branch of an exhaustive switch: the compiler proves it unreachable. */
export function assertNever(value: never): never {
  throw new Error(`unhandled variant: ${JSON.stringify(value)}`);
}

/** Same length and the same items by identity. */
export function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const noRetry: RetryPolicy = Object.freeze({ maxAttempts: 1, initialDelayMs: 1000, backoffCoefficient: 2, maxDelayMs: 30_000 });

export type ValueSource<T> =
  | { readonly kind: 'static'; readonly value: T }
  | { readonly kind: 'function'; readonly fn: (ctx: WorkflowContext) => Awaitable<T> }
  | { readonly kind: 'none' };

export type FailurePolicy = 'fail_fast' | 'continue_on_partial_failure';

export type StepKind = 'tool' | 'agent' | 'conditional' | 'parallel' | 'loop';

interface StepBase {
  readonly id: string;
  readonly conditions: readonly Condition[];
  readonly retry: RetryPolicy;
  /** Per attempt. Undefined: the engine's default for tool and agent steps, none for composites. */
  readonly timeoutMs: number | undefined;
  /** Store the whole output under this variable instead of merging a plain-object output. */
  readonly outputKey: string | undefined;
}

export interface ToolStepDefinition extends StepBase {
  readonly kind: 'tool';
  /** A Tool, or a name the engine's registry resolves before the run starts. */
  readonly tool: Tool | string;
  readonly args: ValueSource<unknown>;
}

export interface AgentStepDefinition extends StepBase {
  readonly kind: 'agent';
  readonly agent: Agent | string;
  readonly input: ValueSource<string>;
  /** What the agent sees as its context (instructions and tools); default the run's userContext. */
  readonly context: ValueSource<unknown>;
  /** Model tokens (prompt + completion) the step may use over all its attempts; undefined: unlimited. */
  readonly tokenBudget: number | undefined;
  /** The model for this step's agent, instead of the agent's own. */
  readonly model: string | undefined;
}

export interface ConditionalStepDefinition extends StepBase {
  readonly kind: 'conditional';
  readonly predicate: Condition;
  readonly ifTrue: StepDefinition | undefined;
  readonly ifFalse: StepDefinition | undefined;
}

export interface ParallelStepDefinition extends StepBase {
  readonly kind: 'parallel';
  readonly branches: readonly StepDefinition[];
  /** false: the first branch to succeed wins and the others are cancelled. */
  readonly waitForAll: boolean;
  readonly failurePolicy: FailurePolicy;
  /** For continue_on_partial_failure: branches that must succeed (default 1). */
  readonly minimumSuccessCount: number | undefined;
}

export interface LoopStepDefinition extends StepBase {
  readonly kind: 'loop';
  readonly body: StepDefinition;
  readonly condition: LoopCondition;
  readonly maxIterations: number;
}

export type StepDefinition =
  | ToolStepDefinition
  | AgentStepDefinition
  | ConditionalStepDefinition
  | ParallelStepDefinition
  | LoopStepDefinition;

export type StepDefinitionOf<K extends StepKind> = Extract<StepDefinition, { kind: K }>;

/** What a compiled workflow holds besides its steps. */
export interface WorkflowDefinition {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly steps: readonly StepDefinition[];
  readonly errorHandlers: ReadonlyMap<string, StepErrorHandler>;
  readonly globalErrorHandler: GlobalErrorHandler | undefined;
}

/** Returns a replacement step to run in place of the failed one, or null to let the failure stand. */
export type StepErrorHandler = (
  result: import('../engine/results.ts').StepResult,
  ctx: WorkflowContext,
) => Awaitable<StepLike | null | undefined>;

export type ErrorAction = 'retry' | 'fail' | 'continue';

export interface ErrorDecision {
  readonly action: ErrorAction;
  /** Wait before a `retry`, in seconds. */
  readonly delaySeconds?: number;
  /** Anything else (escalate, notify_team...) is kept in the step result's metadata and logged. */
  readonly [extra: string]: unknown;
}

export interface StepInfo {
  readonly id: string;
  readonly path: string;
  readonly kind: StepKind;
  readonly attempts: number;
}

/** Decides for any failed top-level step that has no handler of its own. */
export type GlobalErrorHandler = (
  error: import('../errors.ts').StepError,
  step: StepInfo,
  ctx: WorkflowContext,
) => Awaitable<ErrorDecision>;

/** Anything that compiles to a StepDefinition: the public step classes. */
export interface StepLike {
  readonly id: string;
  toDefinition(): StepDefinition;
}
