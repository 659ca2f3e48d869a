/**
 * The seed's step classes: positional constructors and fluent methods, compiled by `toDefinition()`
 * into the frozen StepDefinition union. Options are checked when set, so a bad value fails where it
 * is written, naming the step and the limit.
 */
import type { Agent } from '../agents/agent.ts';
import type { WorkflowContext } from '../context.ts';
import { WorkflowDefinitionError } from '../errors.ts';
import { Limits } from '../limits.ts';
import type { Tool } from '../tools/tool.ts';
import {
  noRetry,
  sameItems,
  type Awaitable,
  type Condition,
  type FailurePolicy,
  type LoopCondition,
  type RetryPolicy,
  type StepDefinition,
  type StepLike,
  type ValueSource,
} from './types.ts';

export type RetryOptions =
  | number
  | {
      /** Retries after the first attempt. */
      readonly maxRetries?: number;
      /** Attempts in all, the first included (the seed's `max_attempts`). */
      readonly maxAttempts?: number;
      readonly initialDelaySeconds?: number;
      readonly maxDelaySeconds?: number;
      readonly backoffCoefficient?: number;
    };

export abstract class WorkflowStep implements StepLike {
  readonly id: string;
  protected conditions: Condition[] = [];
  protected retry: RetryPolicy = noRetry;
  protected timeoutMs: number | undefined;
  protected outputKey: string | undefined;
  #cached: { readonly definition: StepDefinition; readonly children: readonly (StepDefinition | undefined)[] } | undefined;

  constructor(id: string) {
    if (typeof id !== 'string' || id === '') throw new TypeError(`${new.target.name}: step id must be a non-empty string`);
    this.id = id;
  }

  /** Per-attempt timeout in seconds; an overrunning attempt is aborted and fails with TIMEOUT. */
  withTimeout(seconds: number): this {
    if (typeof seconds !== 'number' || !(seconds > 0) || seconds > Limits.maxTimeoutSeconds) {
      throw this.optionError('timeout', `must be a number of seconds in (0, ${Limits.maxTimeoutSeconds}], got ${String(seconds)}`);
    }
    this.timeoutMs = Math.max(1, Math.round(seconds * 1000));
    return this.changed();
  }

  /** `withRetry(3)` and `withRetry({ maxRetries: 3 })` mean 3 retries after the first attempt; `{ maxAttempts: 3 }` means 3 in all. */
  withRetry(options: RetryOptions): this {
    const spec = typeof options === 'number' ? { maxRetries: options } : options;
    if (spec === null || typeof spec !== 'object') throw this.optionError('retry', 'expects a number or { maxRetries | maxAttempts }');
    if (spec.maxRetries !== undefined && spec.maxAttempts !== undefined) {
      throw this.optionError('retry', 'give maxRetries or maxAttempts, not both');
    }
    const maxAttempts = spec.maxAttempts ?? (spec.maxRetries ?? 0) + 1;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > Limits.maxRetries + 1) {
      throw this.optionError('retry', `attempts must be an integer from 1 to ${Limits.maxRetries + 1}, got ${String(maxAttempts)}`);
    }
    const initialDelayMs = seconds(this, 'initialDelaySeconds', spec.initialDelaySeconds, noRetry.initialDelayMs);
    const maxDelayMs = seconds(this, 'maxDelaySeconds', spec.maxDelaySeconds, noRetry.maxDelayMs);
    const backoffCoefficient = spec.backoffCoefficient ?? noRetry.backoffCoefficient;
    if (!(backoffCoefficient >= 1 && backoffCoefficient <= 10)) throw this.optionError('retry.backoffCoefficient', 'must be in [1, 10]');
    this.retry = Object.freeze({ maxAttempts, initialDelayMs, maxDelayMs: Math.max(maxDelayMs, initialDelayMs), backoffCoefficient });
    return this.changed();
  }

  /** The step runs only if every condition holds; otherwise it is skipped (never retried). */
  addCondition(condition: Condition): this {
    if (typeof condition !== 'function') throw this.optionError('condition', 'must be a function (ctx) => boolean');
    this.conditions.push(condition);
    return this.changed();
  }

  /** Store the whole output under one variable instead of merging a plain-object output into the variables. */
  withOutputKey(name: string): this {
    if (typeof name !== 'string' || name === '') throw this.optionError('outputKey', 'must be a non-empty string');
    this.outputKey = name;
    return this.changed();
  }

  /**
   * The step as a frozen definition. Cached until the step or one of its children changes, so running
   * an unchanged workflow again compiles nothing.
   */
  toDefinition(): StepDefinition {
    const children = this.childDefinitions();
    const cached = this.#cached;
    if (cached !== undefined && sameItems(cached.children, children)) return cached.definition;
    const definition = this.build(children);
    this.#cached = { definition, children };
    return definition;
  }

  protected abstract build(children: readonly (StepDefinition | undefined)[]): StepDefinition;

  /** The current definitions of the nested steps, in a fixed order (`build` receives them). */
  protected childDefinitions(): readonly (StepDefinition | undefined)[] {
    return noChildren;
  }

  /** Every fluent setter ends here: the cached definition is stale. */
  protected changed(): this {
    this.#cached = undefined;
    return this;
  }

  protected base() {
    return {
      id: this.id,
      conditions: Object.freeze([...this.conditions]),
      retry: this.retry,
      timeoutMs: this.timeoutMs,
      outputKey: this.outputKey,
    };
  }

  protected optionError(option: string, message: string): WorkflowDefinitionError {
    return new WorkflowDefinitionError([{ path: this.id, code: 'INVALID_OPTION', message: `${option} ${message}` }]);
  }

  protected missing(what: string): WorkflowDefinitionError {
    return new WorkflowDefinitionError([{ path: this.id, code: 'MISSING_FIELD', message: `${this.constructor.name} needs ${what}` }]);
  }
}

const noChildren: readonly StepDefinition[] = Object.freeze([]);

function seconds(step: WorkflowStep, name: string, value: number | undefined, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  if (!(value >= 0 && value <= Limits.maxTimeoutSeconds)) {
    throw new WorkflowDefinitionError([{ path: step.id, code: 'INVALID_OPTION', message: `retry.${name} must be in [0, ${Limits.maxTimeoutSeconds}]` }]);
  }
  return Math.round(value * 1000);
}

function sourceOf<T>(value: T | undefined): ValueSource<T> {
  return value === undefined ? { kind: 'none' } : { kind: 'static', value };
}

/** Runs a tool. With no tool given, the tool is the one registered under the step's id. */
export class ToolStep extends WorkflowStep {
  readonly kind = 'tool' as const;
  #tool: Tool | string;
  #args: ValueSource<unknown>;

  constructor(id: string, tool?: Tool | string, args?: unknown) {
    super(id);
    this.#tool = tool ?? id;
    this.#args = sourceOf(args);
  }

  withArgs(args: unknown): this {
    this.#args = sourceOf(args);
    return this.changed();
  }

  /** Computes the arguments from the context when the step runs. */
  withParamsFunction(fn: (ctx: WorkflowContext) => Awaitable<unknown>): this {
    if (typeof fn !== 'function') throw this.optionError('paramsFunction', 'must be a function (ctx) => args');
    this.#args = { kind: 'function', fn };
    return this.changed();
  }

  protected build(): StepDefinition {
    return Object.freeze({ kind: 'tool', ...this.base(), tool: this.#tool, args: this.#args });
  }
}

/** Runs an agent: instructions as the system prompt, the input as the user message. */
export class AgentStep extends WorkflowStep {
  readonly kind = 'agent' as const;
  #agent: Agent | string;
  #input: ValueSource<string>;
  #context: ValueSource<unknown> = { kind: 'none' };
  #tokenBudget: number | undefined;
  #model: string | undefined;

  constructor(id: string, agent?: Agent | string, message?: string) {
    super(id);
    this.#agent = agent ?? id;
    this.#input = sourceOf(message);
  }

  withInput(message: string): this {
    if (typeof message !== 'string') throw this.optionError('input', 'must be a string');
    this.#input = { kind: 'static', value: message };
    return this.changed();
  }

  withInputFunction(fn: (ctx: WorkflowContext) => Awaitable<string>): this {
    if (typeof fn !== 'function') throw this.optionError('inputFunction', 'must be a function (ctx) => string');
    this.#input = { kind: 'function', fn };
    return this.changed();
  }

  /** What the agent's instructions and tools receive as context (default: the run's userContext). */
  withContextFunction(fn: (ctx: WorkflowContext) => Awaitable<unknown>): this {
    if (typeof fn !== 'function') throw this.optionError('contextFunction', 'must be a function (ctx) => object');
    this.#context = { kind: 'function', fn };
    return this.changed();
  }

  /**
   * Model tokens (prompt + completion) this step may use over all its attempts. A model request that
   * would go over what remains is not sent: the step fails with BUDGET_EXCEEDED.
   */
  withTokenBudget(tokens: number): this {
    if (!Number.isInteger(tokens) || tokens < 1 || tokens > Limits.maxTokenBudget) {
      throw this.optionError('tokenBudget', `must be an integer from 1 to ${Limits.maxTokenBudget}, got ${String(tokens)}`);
    }
    this.#tokenBudget = tokens;
    return this.changed();
  }

  /** The model this step's agent uses here, instead of its own (same provider). */
  withModel(model: string): this {
    if (typeof model !== 'string' || model === '' || model.length > 256) throw this.optionError('model', 'must be a model name of 1 to 256 characters');
    this.#model = model;
    return this.changed();
  }

  protected build(): StepDefinition {
    return Object.freeze({
      kind: 'agent',
      ...this.base(),
      agent: this.#agent,
      input: this.#input,
      context: this.#context,
      tokenBudget: this.#tokenBudget,
      model: this.#model,
    });
  }
}

/** Runs `ifTrue` when the condition holds, else `ifFalse`; skipped when the chosen branch is absent. */
export class ConditionalStep extends WorkflowStep {
  readonly kind = 'conditional' as const;
  #predicate: Condition | undefined;
  #ifTrue: StepLike | undefined;
  #ifFalse: StepLike | undefined;

  constructor(id: string, condition?: Condition, trueStep?: StepLike, falseStep?: StepLike) {
    super(id);
    this.#predicate = condition;
    this.#ifTrue = trueStep;
    this.#ifFalse = falseStep;
  }

  condition(fn: Condition): this {
    if (typeof fn !== 'function') throw this.optionError('condition', 'must be a function (ctx) => boolean');
    this.#predicate = fn;
    return this.changed();
  }

  ifTrue(step: StepLike): this {
    this.#ifTrue = step;
    return this.changed();
  }

  ifFalse(step: StepLike): this {
    this.#ifFalse = step;
    return this.changed();
  }

  protected override childDefinitions(): readonly (StepDefinition | undefined)[] {
    return [this.#ifTrue?.toDefinition(), this.#ifFalse?.toDefinition()];
  }

  protected build([ifTrue, ifFalse]: readonly (StepDefinition | undefined)[]): StepDefinition {
    if (this.#predicate === undefined) throw this.missing('a condition: .condition(ctx => boolean)');
    if (ifTrue === undefined && ifFalse === undefined) throw this.missing('a step: .ifTrue(step) or .ifFalse(step)');
    return Object.freeze({ kind: 'conditional', ...this.base(), predicate: this.#predicate, ifTrue, ifFalse });
  }
}

/** Runs its branches at once, each on a snapshot of the context; outputs merge at the join in branch order. */
export class ParallelStep extends WorkflowStep {
  readonly kind = 'parallel' as const;
  #branches: StepLike[];
  #waitForAll: boolean;
  #failurePolicy: FailurePolicy = 'fail_fast';
  #minimumSuccessCount: number | undefined;

  constructor(id: string, steps: readonly StepLike[] = [], waitForAll = true) {
    super(id);
    this.#branches = [...steps];
    this.#waitForAll = waitForAll;
  }

  addBranch(step: StepLike): this {
    this.#branches.push(step);
    return this.changed();
  }

  /** false: the first branch to succeed wins and the others are cancelled. */
  withWaitForAll(waitForAll: boolean): this {
    this.#waitForAll = waitForAll;
    return this.changed();
  }

  withFailurePolicy(policy: FailurePolicy): this {
    if (policy !== 'fail_fast' && policy !== 'continue_on_partial_failure') {
      throw this.optionError('failurePolicy', `must be 'fail_fast' or 'continue_on_partial_failure', got ${JSON.stringify(policy)}`);
    }
    this.#failurePolicy = policy;
    return this.changed();
  }

  withMinimumSuccessCount(count: number): this {
    if (!Number.isInteger(count) || count < 0) throw this.optionError('minimumSuccessCount', `must be a non-negative integer, got ${String(count)}`);
    this.#minimumSuccessCount = count;
    return this.changed();
  }

  protected override childDefinitions(): readonly StepDefinition[] {
    return this.#branches.map((b) => b.toDefinition());
  }

  protected build(branches: readonly (StepDefinition | undefined)[]): StepDefinition {
    if (branches.length === 0) throw this.missing('at least one branch: .addBranch(step)');
    if (this.#minimumSuccessCount !== undefined && this.#minimumSuccessCount > branches.length) {
      throw this.optionError('minimumSuccessCount', `is ${this.#minimumSuccessCount} but the step has ${branches.length} branches`);
    }
    return Object.freeze({
      kind: 'parallel',
      ...this.base(),
      branches: Object.freeze(branches as StepDefinition[]),
      waitForAll: this.#waitForAll,
      failurePolicy: this.#failurePolicy,
      minimumSuccessCount: this.#minimumSuccessCount,
    });
  }
}

/** Runs its body while `condition(ctx, iteration)` holds, at most `maxIterations` times; outputs are kept as a list. */
export class LoopStep extends WorkflowStep {
  readonly kind = 'loop' as const;
  #body: StepLike | undefined;
  #condition: LoopCondition;
  #maxIterations: number;

  constructor(id: string, step?: StepLike, condition?: LoopCondition, maxIterations: number = Limits.defaultLoopIterations) {
    super(id);
    this.#body = step;
    this.#condition = condition ?? (() => true);
    this.#maxIterations = this.checkIterations(maxIterations);
  }

  withBody(step: StepLike): this {
    this.#body = step;
    return this.changed();
  }

  withCondition(fn: LoopCondition): this {
    if (typeof fn !== 'function') throw this.optionError('condition', 'must be a function (ctx, iteration) => boolean');
    this.#condition = fn;
    return this.changed();
  }

  withMaxIterations(count: number): this {
    this.#maxIterations = this.checkIterations(count);
    return this.changed();
  }

  protected override childDefinitions(): readonly (StepDefinition | undefined)[] {
    return [this.#body?.toDefinition()];
  }

  protected build([body]: readonly (StepDefinition | undefined)[]): StepDefinition {
    if (body === undefined) throw this.missing('a body step: new LoopStep(id, step, condition)');
    return Object.freeze({
      kind: 'loop',
      ...this.base(),
      body,
      condition: this.#condition,
      maxIterations: this.#maxIterations,
    });
  }

  private checkIterations(count: number): number {
    if (!Number.isInteger(count) || count < 0 || count > Limits.maxLoopIterations) {
      throw this.optionError('maxIterations', `must be an integer from 0 to ${Limits.maxLoopIterations}, got ${String(count)}`);
    }
    return count;
  }
}
