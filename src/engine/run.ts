/**
 * One run of one workflow: the interpreter. It walks the definition, applies conditions, retries,
 * timeouts and error handlers, and records every state change as a RunEvent folded into its
 * RunProjection and handed to its journal (the store). A step whose result is recorded is never run
 * again: its result is replayed into the context instead. That is how a parent's retry resumes, and
 * how a run recovered after a crash continues from its stored events.
 */
import { performance } from 'node:perf_hooks';
import type { Agent } from '../agents/agent.ts';
import type { ModelProvider } from '../agents/model-provider.ts';
import type { BudgetGate } from '../agents/budget.ts';
import { attemptUsage, RunBudgets } from './run-budgets.ts';
import type { WorkflowContext } from '../context.ts';
import { compileReplacement, joinPath, type CompiledWorkflow, type Registry } from '../definition/compile.ts';
import type { ErrorDecision, StepDefinition } from '../definition/types.ts';
import { ErrorCode, stepError, toStepError, WorkflowDefinitionError, type StepError } from '../errors.ts';
import { Limits } from '../limits.ts';
import type { StepLogInfo, WorkflowLogger } from '../observability/workflow-logger.ts';
import { callUser, isLeaf, type Attempt, type AttemptEnv, type AttemptOutcome, type StepOutcome, type StepScope } from './attempt-support.ts';
import { attemptRunners, replayers } from './attempts.ts';
import { Cancellation, cancellationError, type LinkedCancellation } from './cancellation.ts';
import type { Clock } from './clock.ts';
import type { Deadlines } from './deadlines.ts';
import { finishedEventType, type AttemptUsage, type FinishedStepStatus, type NewRunEvent, type NewStepEvent, type RunEvent, type StepResultData } from './events.ts';
import type { ToolExecutor } from './executor.ts';
import type { RunJournal } from './journal.ts';
import { nextDelayMs, shouldRetry } from './retry.ts';
import { isCommitted, RunProjection } from './run-projection.ts';
import { StepResult, WorkflowResult } from './results.ts';

export interface RunLimits {
  readonly defaultStepTimeoutMs: number;
  readonly maxOutputBytes: number;
  readonly maxHandlerRetries: number;
}

export interface RunDeps {
  readonly runId: string;
  readonly workflow: CompiledWorkflow;
  readonly registry: Registry;
  readonly executor: ToolExecutor;
  readonly modelProvider: ModelProvider | undefined;
  readonly clock: Clock;
  /** Where step timeouts are scheduled (one per engine). */
  readonly deadlines: Deadlines;
  readonly logger: WorkflowLogger;
  readonly limits: RunLimits;
  readonly signal: AbortSignal | undefined;
  /** Where events go: the store, then listeners. */
  readonly journal: RunJournal;
  /** A recovered run's stored events: folded first, then the run continues after them. */
  readonly history?: readonly RunEvent[];
  /** Model tokens the whole run may use (a recovered run's comes from its run_started event). */
  readonly tokenBudget?: number;
  /** Record every model response as a `model_responded` event. */
  readonly recordModelResponses?: boolean;
  /** The recorded run this one replays its model responses from (kept in run_started, for recovery). */
  readonly replayModelResponsesFrom?: string;
}

type RunOutcome = { readonly status: 'completed' | 'failed' | 'cancelled'; readonly error: (StepError & { stepPath?: string }) | undefined };
type TopLevel = { readonly ctx: WorkflowContext; readonly outcome?: RunOutcome };

/** Raised inside a run when its events cannot be stored: the run stops where it is, to resume on recovery. */
class JournalFailure extends Error {
  constructor(cause: unknown) {
    super('run events could not be stored', { cause });
  }
}

export class Run implements AttemptEnv {
  readonly projection: RunProjection;
  readonly runId: string;
  readonly executor: ToolExecutor;
  readonly modelProvider: ModelProvider | undefined;
  readonly forcedModelProvider: ModelProvider | undefined;
  readonly agents: ReadonlyMap<string, Agent>;
  readonly maxOutputBytes: number;
  readonly recordModelResponses: boolean;
  readonly #deps: RunDeps;
  readonly #budgets: RunBudgets;
  readonly #root: LinkedCancellation;
  /** Decided once per run: building log arguments for every step is measurable at thousands of steps/s. */
  readonly #logSteps: boolean;
  #seq = 0;
  #journalFailure: JournalFailure | undefined;
  /** The commit of the last top-level step's result, awaited before anything else runs. */
  #pendingAck: Promise<void> | undefined;
  readonly #topScope: StepScope;

  constructor(deps: RunDeps) {
    this.#deps = deps;
    this.runId = deps.runId;
    this.executor = deps.executor;
    this.modelProvider = deps.modelProvider;
    this.agents = deps.registry.agents;
    // A replay answers every agent from the recording, even agents with a provider of their own.
    this.forcedModelProvider = deps.replayModelResponsesFrom === undefined ? undefined : deps.modelProvider;
    this.maxOutputBytes = deps.limits.maxOutputBytes;
    this.projection = new RunProjection(deps.runId);
    for (const event of deps.history ?? []) this.projection.apply(event);
    const started = deps.history?.[0];
    this.recordModelResponses = started?.type === 'run_started' ? started.recordModelResponses === true : (deps.recordModelResponses ?? false);
    const runLimit = started?.type === 'run_started' ? started.tokenBudget : deps.tokenBudget;
    this.#budgets = new RunBudgets(runLimit, deps.history);
    this.#seq = this.projection.lastSeq;
    // The caller's signal cancels the whole run.
    this.#root = Cancellation.fromSignal(deps.signal, () => stepError(ErrorCode.CANCELLED, 'run cancelled'));
    this.#topScope = { parent: undefined, prefix: undefined, cancellation: this.#root, deferFinish: true };
    this.#logSteps = deps.logger.observesSteps();
  }

  /**
   * Runs (or, for a recovered run, continues) the workflow. Resolves with the result; rejects only if
   * the run's events cannot be stored (the run then stays unfinished in the store, for recovery).
   */
  async execute(initial: WorkflowContext): Promise<WorkflowResult> {
    const { workflow } = this.#deps;
    const started = performance.now();
    let ctx = initial;
    let outcome: RunOutcome = { status: 'completed', error: undefined };
    try {
      if (this.projection.status === 'pending') {
        this.#emit({
          type: 'run_started',
          workflowId: workflow.id,
          workflowName: workflow.name,
          definitionHash: workflow.definitionHash,
          totalSteps: workflow.steps.length,
          input: { workflowId: initial.workflowId, userContext: initial.userContext, initialData: initial.initialData, variables: initial.variables, metadata: initial.metadata },
          ...(this.#budgets.runLimit === undefined ? {} : { tokenBudget: this.#budgets.runLimit }),
          ...(this.recordModelResponses ? { recordModelResponses: true } : {}),
          ...(this.#deps.replayModelResponsesFrom === undefined ? {} : { replayModelResponsesFrom: this.#deps.replayModelResponsesFrom }),
        });
        // Not awaited: the start commits with the first step's events (a crash before then loses a run
        // nobody was told about; callers that acknowledge a start wait for `durable()` themselves).
      }
      this.#log((logger) => logger.logWorkflowStart(workflow.id, initial, this.#runInfo()));
      for (const def of workflow.steps) {
        if (this.#root.aborted) {
          outcome = { status: 'cancelled', error: cancellationError(this.#root) };
          break;
        }
        const step = await this.#runTopLevel(def, ctx);
        ctx = step.ctx;
        if (step.outcome !== undefined) {
          outcome = step.outcome;
          break;
        }
      }
    } catch (err) {
      if (err instanceof JournalFailure || this.#journalFailure !== undefined) {
        this.#root.unlink();
        throw (this.#journalFailure ?? (err as JournalFailure)).cause;
      }
      // Attempts turn every expected failure into data; this is a bug. End the run rather than leave it hanging.
      outcome = { status: 'failed', error: stepError(ErrorCode.INTERNAL, `engine error: ${toStepError(err).message}`) };
    } finally {
      this.#root.unlink();
    }
    const type = outcome.status === 'completed' ? 'run_completed' : outcome.status === 'failed' ? 'run_failed' : 'run_cancelled';
    this.#emit(outcome.error === undefined ? { type } : { type, error: outcome.error });
    try {
      await this.#durable();
    } catch (err) {
      throw err instanceof JournalFailure ? err.cause : err;
    }
    const result = new WorkflowResult({
      workflowId: workflow.id,
      runId: this.runId,
      status: this.projection.status,
      steps: this.projection.topLevelResults(),
      context: ctx,
      error: this.projection.error,
      totalExecutionTimeMs: performance.now() - started,
      totalSteps: workflow.steps.length,
    });
    this.#log((logger) => logger.logWorkflowComplete(result));
    return result;
  }

  /** Runs one top-level step with the workflow's error handling; `outcome` is set when the run must stop. */
  async #runTopLevel(def: StepDefinition, ctx: WorkflowContext): Promise<TopLevel> {
    const { workflow } = this.#deps;
    // The previous top-level step is acknowledged (stored) before this one starts. Without a store
    // there is nothing to wait for, and no promise turn is spent on it.
    if (this.#pendingAck !== undefined) await this.#pendingAck;
    const scope = this.#topScope;
    let step = await this.executeStep(def, ctx, scope);
    const ownHandler = workflow.errorHandlers.get(def.id);
    if (step.replayed) return this.#afterTopLevel(def, step.result, step.ctx, step.result.metadata?.errorHandling as ErrorDecision | undefined);

    let decision: ErrorDecision | undefined;
    let handlerRetries = 0;
    while (step.result.status === 'failed' && ownHandler === undefined && workflow.globalErrorHandler !== undefined) {
      decision = await this.#decide(step.result, ctx);
      // A step that never started (its condition threw) has nothing to retry.
      const started = this.projection.record(step.result.path)?.status === 'running';
      if (decision.action !== 'retry' || !started || handlerRetries >= this.#deps.limits.maxHandlerRetries || this.#root.aborted) break;
      handlerRetries += 1;
      const delayMs = Math.round(clamp(decision.delaySeconds, 0, Limits.maxTimeoutSeconds) * 1000);
      this.#emit({ type: 'step_retrying', path: step.result.path, attempt: step.result.attempts, error: step.result.error!, delayMs, reason: 'error_handler', ...retryingUsage(step.result.metadata) });
      await this.#deps.clock.sleep(delayMs, this.#root.signal);
      step = await this.executeStep(def, ctx, scope);
    }
    let result = decision === undefined ? step.result : withMetadata(step.result, { errorHandling: { ...decision, handlerRetries } });
    if (result.status === 'failed' && this.#root.aborted) {
      // Cancelled while the handler was deciding: the run was cancelled, not failed.
      result = { ...result, status: 'cancelled', error: cancellationError(this.#root) };
    }
    // Its commit is awaited by whatever runs next; at the end of the run it shares the final commit.
    this.#pendingAck = handled(this.#finish(result, undefined, false));
    return this.#afterTopLevel(def, result, step.ctx, decision);
  }

  /** What a top-level step's final result means for the run (the same live and on replay). */
  #afterTopLevel(def: StepDefinition, result: StepResultData, ctx: WorkflowContext, decision: ErrorDecision | undefined): Promise<TopLevel> | TopLevel {
    switch (result.status) {
      case 'completed':
      case 'skipped':
        return { ctx };
      case 'cancelled':
        return { ctx, outcome: { status: 'cancelled', error: { ...result.error!, stepPath: result.path } } };
      case 'failed':
        if (this.#deps.workflow.errorHandlers.has(def.id)) return this.#recover(def, result, ctx);
        if (decision?.action === 'continue') return { ctx };
        return { ctx, outcome: { status: 'failed', error: { ...result.error!, stepPath: result.path } } };
    }
  }

  /** Asks the workflow-wide handler what to do with a failed step; a throwing handler means fail. */
  async #decide(result: StepResultData, ctx: WorkflowContext): Promise<ErrorDecision> {
    const handler = this.#deps.workflow.globalErrorHandler!;
    const info = { id: result.stepId, path: result.path, kind: result.kind, attempts: result.attempts };
    const answered = await callUser(() => handler(result.error!, info, ctx), 'error handler', result.path, this.#root);
    let decision: ErrorDecision = answered.ok ? answered.value : { action: 'fail', handlerError: answered.error.message };
    if (decision?.action !== 'retry' && decision?.action !== 'continue' && decision?.action !== 'fail') {
      decision = { action: 'fail', handlerError: `error handler returned ${safeJson(decision)}; expected { action: 'retry' | 'fail' | 'continue' }` };
    }
    const handled = decision;
    this.#log((logger) => logger.logErrorHandled(result.stepId, handled, this.#stepInfo(result.path, result.kind, result.attempts)));
    return decision;
  }

  /** Runs the step's own error handler and the replacement step it returns, at `{stepId}:recover/{id}`. */
  async #recover(def: StepDefinition, failed: StepResultData, ctx: WorkflowContext): Promise<TopLevel> {
    const handler = this.#deps.workflow.errorHandlers.get(def.id)!;
    const failure = (error: StepError, stepPath: string): TopLevel => ({ ctx, outcome: { status: 'failed', error: { ...error, stepPath } } });
    const prefix = `${failed.path}:recover`;
    const answered = await callUser(() => handler(this.projection.stepResult(failed.path), ctx), `error handler for ${def.id}`, failed.path, this.#root);
    if (!answered.ok) return this.#root.aborted ? { ctx, outcome: { status: 'cancelled', error: cancellationError(this.#root) } } : failure(answered.error, failed.path);
    if (answered.value === null || answered.value === undefined) return failure(failed.error!, failed.path);
    let replacementDef: StepDefinition;
    try {
      replacementDef = compileReplacement(answered.value, this.#deps.registry, prefix);
    } catch (err) {
      const message = err instanceof WorkflowDefinitionError ? err.message : toStepError(err).message;
      return failure(stepError(ErrorCode.INVALID_DEFINITION, `error handler for ${def.id} returned an invalid step: ${message}`), failed.path);
    }
    const scope: StepScope = { parent: undefined, prefix, cancellation: this.#root, deferFinish: true, metadata: { replaces: def.id } };
    await this.#pendingAck;
    const step = await this.executeStep(replacementDef, ctx, scope);
    this.#pendingAck = handled(this.#finish(step.result, undefined, step.replayed));
    switch (step.result.status) {
      case 'completed':
      case 'skipped':
        return { ctx: step.ctx };
      case 'cancelled':
        return { ctx: step.ctx, outcome: { status: 'cancelled', error: { ...step.result.error!, stepPath: step.result.path } } };
      case 'failed':
        return failure(step.result.error!, step.result.path);
    }
  }

  /** Runs a step (conditions, attempts, retries, timeout) and returns its result and the context after it. */
  async executeStep(def: StepDefinition, ctx: WorkflowContext, scope: StepScope): Promise<StepOutcome> {
    const path = joinPath(scope.prefix, def.id);
    const recorded = this.projection.record(path);
    // Committed results never run again; a top-level step's final result (even a failure) is decided.
    if (recorded?.result !== undefined && (isCommitted(recorded.status) || scope.parent === undefined || scope.replayOnly === true)) {
      return this.#replay(def, ctx, scope, path, recorded.result);
    }
    if (scope.replayOnly === true) {
      const error = stepError(ErrorCode.CANCELLED, `step ${path} did not run`);
      const result: StepResultData = { stepId: def.id, path, kind: def.kind, status: 'cancelled', error, executionTimeMs: 0, attempts: recorded?.attempts ?? 0 };
      return { result, ctx, replayed: true };
    }

    const started = performance.now();
    const priorAttempts = recorded?.attempts ?? 0;
    // Not async: with no store to wait for, a step's end costs no extra promise turns.
    const settle = (status: FinishedStepStatus, next: WorkflowContext, attempts: number, output?: unknown, error?: StepError, metadata?: Record<string, unknown>): StepOutcome | Promise<StepOutcome> => {
      const result: StepResultData = {
        stepId: def.id,
        path,
        kind: def.kind,
        status,
        output,
        error,
        executionTimeMs: performance.now() - started,
        attempts,
        metadata: scope.metadata === undefined ? metadata : { ...metadata, ...scope.metadata },
      };
      const outcome: StepOutcome = { result, ctx: next, replayed: false };
      const stored = scope.deferFinish === true ? undefined : this.#finish(result, scope.parent, false);
      return stored === undefined ? outcome : stored.then(() => outcome);
    };

    for (const condition of def.conditions) {
      const holds = await callUser(() => condition(ctx), 'condition', path, scope.cancellation);
      if (!holds.ok) {
        if (scope.cancellation.aborted) return settle('cancelled', ctx, priorAttempts, undefined, cancellationError(scope.cancellation));
        return settle('failed', ctx, priorAttempts, undefined, holds.error);
      }
      if (!holds.value) return settle('skipped', ctx, priorAttempts, undefined, undefined, { reason: 'conditions not met' });
    }

    let attempt = priorAttempts;
    for (let attemptsMade = 1; ; attemptsMade++) {
      if (scope.cancellation.aborted) return settle('cancelled', ctx, attempt, undefined, cancellationError(scope.cancellation));
      attempt += 1;
      this.#emit({ type: 'step_started', path, parent: scope.parent, stepId: def.id, kind: def.kind, attempt });
      if (this.#logSteps) this.#log((logger) => logger.logStepStart(def.id, ctx, this.#stepInfo(path, def.kind, attempt)));
      const outcome = await this.#attempt(def, ctx, path, attempt, scope.cancellation);
      switch (outcome.status) {
        case 'ok':
          return settle('completed', applyOutput(def, outcome.ctx, outcome.output), attempt, outcome.output, undefined, outcome.metadata);
        case 'skipped':
          return settle('skipped', outcome.ctx, attempt, undefined, undefined, outcome.metadata);
        case 'error': {
          // Cancelled means the parent or the run was: a tool's own error code never cancels a run.
          if (scope.cancellation.aborted) return settle('cancelled', ctx, attempt, undefined, cancellationError(scope.cancellation), outcome.metadata);
          const { error } = outcome;
          if (!shouldRetry(error, def.retry, attemptsMade)) return settle('failed', ctx, attempt, undefined, error, outcome.metadata);
          const delayMs = nextDelayMs(def.retry, attemptsMade, () => this.#deps.clock.random(), error);
          this.#emit({ type: 'step_retrying', path, attempt, error, delayMs, reason: 'retry_policy', ...retryingUsage(outcome.metadata) });
          this.#log((logger) => logger.logStepRetry(def.id, error, delayMs, this.#stepInfo(path, def.kind, attempt)));
          await this.#deps.clock.sleep(delayMs, scope.cancellation.signal);
        }
      }
    }
  }

  /** One attempt under the step's timeout: a child cancellation that aborts with TIMEOUT when the timer fires. */
  async #attempt(def: StepDefinition, ctx: WorkflowContext, path: string, attempt: number, parent: Cancellation): Promise<AttemptOutcome> {
    const timeoutMs = def.timeoutMs ?? (isLeaf(def.kind) ? this.#deps.limits.defaultStepTimeoutMs : undefined);
    const controller = parent.child();
    let timedOut: StepError | undefined;
    const deadline =
      timeoutMs === undefined
        ? undefined
        : this.#deps.deadlines.schedule(timeoutMs, () => {
            timedOut = stepError(ErrorCode.TIMEOUT, `step ${path} exceeded its timeout of ${timeoutMs / 1000} s`, { timeoutMs });
            controller.abort(timedOut);
          });
    try {
      const run = attemptRunners[def.kind] as (a: Attempt<typeof def.kind>) => Promise<AttemptOutcome>;
      // Leaves end at their cancellation by themselves (user functions, inline tools and agents are raced
      // against it, pool threads are terminated); composites end when their children do.
      const outcome = await run({ env: this, def, ctx, path, attempt, cancellation: controller });
      // The step's own timer fired: its children were cancelled because of it, but the step timed out.
      return timedOut !== undefined && outcome.status === 'error' ? { ...outcome, error: timedOut } : outcome;
    } catch (err) {
      if (err instanceof JournalFailure) throw err;
      // Attempts turn every expected failure into data; reaching here is a bug in the engine.
      return { status: 'error', error: stepError(ErrorCode.INTERNAL, `step ${path}: engine error: ${toStepError(err).message}`) };
    } finally {
      deadline?.cancel();
      controller.unlink();
    }
  }

  /** A recorded step: leaves replay their output; composites rebuild their context from their children's records. */
  async #replay(def: StepDefinition, ctx: WorkflowContext, scope: StepScope, path: string, recorded: StepResultData): Promise<StepOutcome> {
    if (recorded.status !== 'completed') return { result: recorded, ctx, replayed: true };
    if (isLeaf(def.kind)) return { result: recorded, ctx: applyOutput(def, ctx, recorded.output), replayed: true };
    const replay = replayers[def.kind] as (a: Attempt<typeof def.kind>, recorded: StepResultData) => Promise<WorkflowContext>;
    const next = await replay({ env: this, def, ctx, path, attempt: recorded.attempts, cancellation: scope.cancellation }, recorded);
    return { result: recorded, ctx: def.outputKey === undefined ? next : next.withVariable(def.outputKey, recorded.output), replayed: true };
  }

  /**
   * Records a step's final result. With a store, returns a promise that settles once it is durable: the
   * step is acknowledged (the next step starts) only then.
   */
  #finish(result: StepResultData, parent: string | undefined, replayed: boolean): Promise<void> | undefined {
    if (replayed) return undefined;
    this.#emit({ type: finishedEventType[result.status], path: result.path, parent, result });
    if (this.#logSteps || result.status === 'failed') {
      this.#log((logger) => logger.logStepComplete(result.stepId, new StepResult(result), result.executionTimeMs, this.#stepInfo(result.path, result.kind, result.attempts)));
    }
    return this.#deps.journal.immediate ? undefined : this.#durable();
  }

  /** The budgets an agent step's model requests must fit: its own (over all attempts) and the run's. */
  budgetFor(path: string, stepLimit: number | undefined): BudgetGate {
    return this.#budgets.gateFor(path, stepLimit);
  }


  /** For a running agent step: its streamed output and recorded model responses. */
  emitStepEvent(event: NewStepEvent): void {
    this.#emit(event);
  }

  #emit(event: NewRunEvent): void {
    // Completing the caller's fresh object in place: a spread per event was the hottest line of E1.
    const stamped = event as unknown as { seq: number; runId: string; at: number };
    stamped.seq = ++this.#seq;
    stamped.runId = this.runId;
    stamped.at = this.#deps.clock.now();
    const full = event as unknown as RunEvent;
    this.projection.apply(full);
    this.#deps.journal.record(full);
  }

  /** Waits until every event so far is stored; a store failure stops the run (it resumes on recovery). */
  async #durable(): Promise<void> {
    const journal = this.#deps.journal;
    if (journal.immediate) return;
    try {
      await journal.durable();
    } catch (err) {
      if (this.#journalFailure === undefined) {
        this.#journalFailure = new JournalFailure(err);
        this.#root.abort(stepError(ErrorCode.CANCELLED, `run stopped: its events cannot be stored (${toStepError(err).message})`));
      }
      throw this.#journalFailure;
    }
  }

  /** Logging observes the run; a logger that throws must not change it. */
  #log(call: (logger: WorkflowLogger) => void): void {
    try {
      call(this.#deps.logger);
    } catch (err) {
      process.emitWarning(`jaf-workflows: the WorkflowLogger threw (run ${this.runId}): ${toStepError(err).message}`, 'WorkflowLoggerWarning');
    }
  }

  #runInfo() {
    return { runId: this.runId, workflowId: this.#deps.workflow.id };
  }

  #stepInfo(path: string, kind: StepDefinition['kind'], attempt: number): StepLogInfo {
    return { runId: this.runId, workflowId: this.#deps.workflow.id, path, kind, attempt };
  }
}

/**
 * Data flow after a step completes: `outputKey` stores the whole output under one variable; otherwise a
 * tool or agent step's plain-object output is merged into the variables. Composites pass on the
 * context their children produced.
 */
function applyOutput(def: StepDefinition, ctx: WorkflowContext, output: unknown): WorkflowContext {
  if (def.outputKey !== undefined) return ctx.withVariable(def.outputKey, output);
  if (isLeaf(def.kind) && isPlainObject(output)) return ctx.withVariables(output);
  return ctx;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function withMetadata(result: StepResultData, extra: Record<string, unknown>): StepResultData {
  return { ...result, metadata: { ...result.metadata, ...extra } };
}

function clamp(value: unknown, min: number, max: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : min;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}


/**
 * A commit promise that may never be awaited (the run's last step shares the final commit, which is
 * awaited on its own): marked handled so that a store failure is not an unhandled rejection, which
 * would end the process. The failure still reaches the run through #journalFailure and the final commit.
 */
function handled(ack: Promise<void> | undefined): Promise<void> | undefined {
  ack?.catch(() => {});
  return ack;
}

/** The failed attempt's usage on its step_retrying event, when it reported any. */
function retryingUsage(metadata: Readonly<Record<string, unknown>> | undefined): { usage?: AttemptUsage } {
  const usage = attemptUsage(metadata);
  return usage === undefined ? {} : { usage };
}
