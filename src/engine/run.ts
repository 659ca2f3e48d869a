/**
 * One run of one workflow: the interpreter. It walks the definition, applies conditions, retries,
 * timeouts and error handlers, and records every state change as a RunEvent folded into its
 * RunProjection. A step whose result is already recorded is never run again: its recorded result is
 * replayed into the context instead (how a parent's retry resumes, and later how recovery works).
 */
import { performance } from 'node:perf_hooks';
import type { ModelProvider } from '../agents/model-provider.ts';
import type { WorkflowContext } from '../context.ts';
import { compileReplacement, joinPath, type CompiledWorkflow, type Registry } from '../definition/compile.ts';
import type { ErrorDecision, StepDefinition } from '../definition/types.ts';
import { ErrorCode, stepError, toStepError, WorkflowDefinitionError, type StepError } from '../errors.ts';
import type { StepLogInfo, WorkflowLogger } from '../observability/workflow-logger.ts';
import { attemptRunners, isLeaf, type Attempt, type AttemptEnv, type AttemptOutcome, type StepOutcome, type StepScope } from './attempts.ts';
import { Cancellation, cancellationError, type LinkedCancellation } from './cancellation.ts';
import type { Clock } from './clock.ts';
import { finishedEventType, type FinishedStepStatus, type NewRunEvent, type RunEvent, type StepResultData } from './events.ts';
import type { ToolExecutor } from './executor.ts';
import { shouldRetry, nextDelayMs } from './retry.ts';
import { isFinal, RunProjection } from './run-projection.ts';
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
  readonly logger: WorkflowLogger;
  readonly limits: RunLimits;
  readonly signal: AbortSignal | undefined;
  readonly onEvent: ((event: RunEvent) => void) | undefined;
}

type RunOutcome = { readonly status: 'completed' | 'failed' | 'cancelled'; readonly error: (StepError & { stepPath?: string }) | undefined };

export class Run implements AttemptEnv {
  readonly projection: RunProjection;
  readonly runId: string;
  readonly executor: ToolExecutor;
  readonly modelProvider: ModelProvider | undefined;
  readonly maxOutputBytes: number;
  readonly #deps: RunDeps;
  readonly #root: LinkedCancellation;
  /** Decided once per run: building log arguments for every step is measurable at thousands of steps/s. */
  readonly #logSteps: boolean;
  #seq = 0;

  constructor(deps: RunDeps) {
    this.#deps = deps;
    this.runId = deps.runId;
    this.executor = deps.executor;
    this.modelProvider = deps.modelProvider;
    this.maxOutputBytes = deps.limits.maxOutputBytes;
    this.projection = new RunProjection(deps.runId);
    // The caller's signal cancels the whole run.
    this.#root = Cancellation.fromSignal(deps.signal, () => stepError(ErrorCode.CANCELLED, 'run cancelled'));
    this.#logSteps = deps.logger.observesSteps();
  }

  async execute(initial: WorkflowContext): Promise<WorkflowResult> {
    const { workflow, logger } = this.#deps;
    const started = performance.now();
    this.#emit({
      type: 'run_started',
      workflowId: workflow.id,
      workflowName: workflow.name,
      definitionHash: workflow.definitionHash,
      totalSteps: workflow.steps.length,
      input: {
        workflowId: initial.workflowId,
        userContext: initial.userContext,
        initialData: initial.initialData,
        variables: initial.variables,
        metadata: initial.metadata,
      },
    });
    logger.logWorkflowStart(workflow.id, initial, this.#runInfo());
    let ctx = initial;
    let outcome: RunOutcome = { status: 'completed', error: undefined };
    try {
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
    } finally {
      this.#root.unlink();
    }
    const type = outcome.status === 'completed' ? 'run_completed' : outcome.status === 'failed' ? 'run_failed' : 'run_cancelled';
    this.#emit(outcome.error === undefined ? { type } : { type, error: outcome.error });
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
    logger.logWorkflowComplete(result);
    return result;
  }

  /** Runs one top-level step with the workflow's error handling; `outcome` is set when the run must stop. */
  async #runTopLevel(def: StepDefinition, ctx: WorkflowContext): Promise<{ ctx: WorkflowContext; outcome?: RunOutcome }> {
    const { workflow } = this.#deps;
    const scope: StepScope = { parent: undefined, prefix: undefined, cancellation: this.#root, deferFinish: true };
    let step = await this.executeStep(def, ctx, scope);
    const ownHandler = workflow.errorHandlers.get(def.id);
    let decision: ErrorDecision | undefined;
    let handlerRetries = 0;
    while (step.result.status === 'failed' && ownHandler === undefined && workflow.globalErrorHandler !== undefined) {
      decision = await this.#decide(step.result, ctx);
      // A step that never started (its condition threw) has nothing to retry.
      const started = this.projection.record(step.result.path)?.status === 'running';
      if (decision.action !== 'retry' || !started || handlerRetries >= this.#deps.limits.maxHandlerRetries || this.#root.aborted) break;
      handlerRetries += 1;
      const delayMs = Math.max(0, Math.round((decision.delaySeconds ?? 0) * 1000));
      this.#emit({ type: 'step_retrying', path: step.result.path, attempt: step.result.attempts, error: step.result.error!, delayMs, reason: 'error_handler' });
      await this.#deps.clock.sleep(delayMs, this.#root.signal);
      step = await this.executeStep(def, ctx, scope);
    }
    const result = decision === undefined ? step.result : withMetadata(step.result, { errorHandling: { ...decision, handlerRetries } });
    this.#finish(result, undefined, step.replayed);
    const failure = { ...result.error!, stepPath: result.path };
    switch (result.status) {
      case 'completed':
      case 'skipped':
        return { ctx: step.ctx };
      case 'cancelled':
        return { ctx: step.ctx, outcome: { status: 'cancelled', error: failure } };
      case 'failed':
        if (ownHandler !== undefined) return this.#recover(def, result, step.ctx);
        if (decision?.action === 'continue') return { ctx: step.ctx };
        return { ctx: step.ctx, outcome: { status: 'failed', error: failure } };
    }
  }

  /** Asks the workflow-wide handler what to do with a failed step; a throwing handler means fail. */
  async #decide(result: StepResultData, ctx: WorkflowContext): Promise<ErrorDecision> {
    const handler = this.#deps.workflow.globalErrorHandler!;
    const info = { id: result.stepId, path: result.path, kind: result.kind, attempts: result.attempts };
    let decision: ErrorDecision;
    try {
      decision = await handler(result.error!, info, ctx);
    } catch (err) {
      decision = { action: 'fail', handlerError: toStepError(err).message };
    }
    if (decision?.action !== 'retry' && decision?.action !== 'continue' && decision?.action !== 'fail') {
      decision = { action: 'fail', handlerError: `error handler returned ${JSON.stringify(decision)}; expected { action: 'retry' | 'fail' | 'continue' }` };
    }
    this.#deps.logger.logErrorHandled(result.stepId, decision, this.#stepInfo(result.path, result.kind, result.attempts));
    return decision;
  }

  /** Runs the step's own error handler and the replacement step it returns, at `{stepId}:recover/{id}`. */
  async #recover(def: StepDefinition, failed: StepResultData, ctx: WorkflowContext): Promise<{ ctx: WorkflowContext; outcome?: RunOutcome }> {
    const handler = this.#deps.workflow.errorHandlers.get(def.id)!;
    const failure = (error: StepError, stepPath: string): { ctx: WorkflowContext; outcome: RunOutcome } => ({ ctx, outcome: { status: 'failed', error: { ...error, stepPath } } });
    let replacementDef: StepDefinition;
    try {
      const replacement = await handler(this.projection.stepResult(failed.path), ctx);
      if (replacement === null || replacement === undefined) return failure(failed.error!, failed.path);
      replacementDef = compileReplacement(replacement, this.#deps.registry, `${failed.path}:recover`);
    } catch (err) {
      const error =
        err instanceof WorkflowDefinitionError
          ? stepError(ErrorCode.INVALID_DEFINITION, `error handler for ${def.id} returned an invalid step: ${err.message}`)
          : stepError(ErrorCode.USER_FUNCTION_ERROR, `error handler for ${def.id} threw: ${toStepError(err).message}`);
      return failure(error, failed.path);
    }
    const prefix = `${failed.path}:recover`;
    const scope: StepScope = { parent: undefined, prefix, cancellation: this.#root, deferFinish: true, metadata: { replaces: def.id } };
    const step = await this.executeStep(replacementDef, ctx, scope);
    this.#finish(step.result, undefined, step.replayed);
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
    if (recorded?.result !== undefined && (isFinal(recorded.status) || scope.replayOnly === true)) return this.#replay(def, ctx, scope, recorded.result);
    if (scope.replayOnly === true) {
      const error = stepError(ErrorCode.CANCELLED, `step ${path} did not run`);
      const result: StepResultData = { stepId: def.id, path, kind: def.kind, status: 'cancelled', error, executionTimeMs: 0, attempts: recorded?.attempts ?? 0 };
      return { result, ctx, replayed: true };
    }

    const started = performance.now();
    const priorAttempts = recorded?.attempts ?? 0;
    const finish = (status: FinishedStepStatus, fields: { output?: unknown; error?: StepError; metadata?: Record<string, unknown> }, attempts: number): StepResultData => {
      const result: StepResultData = {
        stepId: def.id,
        path,
        kind: def.kind,
        status,
        output: fields.output,
        error: fields.error,
        executionTimeMs: performance.now() - started,
        attempts,
        metadata: scope.metadata === undefined ? fields.metadata : { ...fields.metadata, ...scope.metadata },
      };
      if (scope.deferFinish !== true) this.#finish(result, scope.parent, false);
      return result;
    };

    for (const condition of def.conditions) {
      let holds: boolean;
      try {
        holds = await condition(ctx);
      } catch (err) {
        const error = stepError(ErrorCode.USER_FUNCTION_ERROR, `step ${path}: condition threw: ${toStepError(err).message}`);
        return { result: finish('failed', { error }, priorAttempts), ctx, replayed: false };
      }
      if (!holds) return { result: finish('skipped', { metadata: { reason: 'conditions not met' } }, priorAttempts), ctx, replayed: false };
    }

    let attempt = priorAttempts;
    for (let attemptsMade = 1; ; attemptsMade++) {
      if (scope.cancellation.aborted) return { result: finish('cancelled', { error: cancellationError(scope.cancellation) }, attempt), ctx, replayed: false };
      attempt += 1;
      this.#emit({ type: 'step_started', path, parent: scope.parent, stepId: def.id, kind: def.kind, attempt });
      if (this.#logSteps) this.#deps.logger.logStepStart(def.id, ctx, this.#stepInfo(path, def.kind, attempt));
      const outcome = await this.#attempt(def, ctx, path, attempt, scope.cancellation, false);
      switch (outcome.status) {
        case 'ok': {
          const next = applyOutput(def, outcome.ctx, outcome.output);
          return { result: finish('completed', { output: outcome.output, metadata: outcome.metadata }, attempt), ctx: next, replayed: false };
        }
        case 'skipped':
          return { result: finish('skipped', { metadata: outcome.metadata }, attempt), ctx: outcome.ctx, replayed: false };
        case 'error': {
          const { error } = outcome;
          if (error.code === ErrorCode.CANCELLED) return { result: finish('cancelled', { error, metadata: outcome.metadata }, attempt), ctx, replayed: false };
          if (!shouldRetry(error, def.retry, attemptsMade) || scope.cancellation.aborted) {
            return { result: finish('failed', { error, metadata: outcome.metadata }, attempt), ctx, replayed: false };
          }
          const delayMs = nextDelayMs(def.retry, attemptsMade, () => this.#deps.clock.random());
          this.#emit({ type: 'step_retrying', path, attempt, error, delayMs, reason: 'retry_policy' });
          this.#deps.logger.logStepRetry(def.id, error, delayMs, this.#stepInfo(path, def.kind, attempt));
          await this.#deps.clock.sleep(delayMs, scope.cancellation.signal);
        }
      }
    }
  }

  /** One attempt under the step's timeout: a child cancellation that aborts with TIMEOUT when the timer fires. */
  async #attempt(def: StepDefinition, ctx: WorkflowContext, path: string, attempt: number, parent: Cancellation, replayOnly: boolean): Promise<AttemptOutcome> {
    const timeoutMs = def.timeoutMs ?? (isLeaf(def.kind) ? this.#deps.limits.defaultStepTimeoutMs : undefined);
    const controller = parent.child();
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => controller.abort(stepError(ErrorCode.TIMEOUT, `step ${path} exceeded its timeout of ${timeoutMs / 1000} s`, { timeoutMs })), timeoutMs);
    try {
      const run = attemptRunners[def.kind] as (a: Attempt<typeof def.kind>) => Promise<AttemptOutcome>;
      return await run({ env: this, def, ctx, path, attempt, cancellation: controller, replayOnly });
    } catch (err) {
      // Attempts turn every expected failure into data; reaching here is a bug in the engine.
      return { status: 'error', error: stepError(ErrorCode.INTERNAL, `step ${path}: engine error: ${toStepError(err).message}`) };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      controller.unlink();
    }
  }

  /** A recorded step: leaves replay their output; composites re-walk their (recorded) children to rebuild the context. */
  async #replay(def: StepDefinition, ctx: WorkflowContext, scope: StepScope, recorded: StepResultData): Promise<StepOutcome> {
    if (recorded.status !== 'completed') return { result: recorded, ctx, replayed: true };
    if (isLeaf(def.kind)) return { result: recorded, ctx: applyOutput(def, ctx, recorded.output), replayed: true };
    const rerun = await this.#attempt(def, ctx, recorded.path, recorded.attempts, scope.cancellation, true);
    const next = rerun.status === 'ok' ? rerun.ctx : ctx;
    return { result: recorded, ctx: def.outputKey === undefined ? next : next.withVariable(def.outputKey, recorded.output), replayed: true };
  }

  #finish(result: StepResultData, parent: string | undefined, replayed: boolean): void {
    if (replayed) return;
    this.#emit({ type: finishedEventType[result.status], path: result.path, parent, result });
    if (this.#logSteps || result.status === 'failed') {
      this.#deps.logger.logStepComplete(result.stepId, new StepResult(result), result.executionTimeMs, this.#stepInfo(result.path, result.kind, result.attempts));
    }
  }

  #emit(event: NewRunEvent): void {
    // Completing the caller's fresh object in place: a spread per event was the hottest line of E1.
    const stamped = event as unknown as { seq: number; runId: string; at: number };
    stamped.seq = ++this.#seq;
    stamped.runId = this.runId;
    stamped.at = this.#deps.clock.now();
    const full = event as unknown as RunEvent;
    this.projection.apply(full);
    const listener = this.#deps.onEvent;
    if (listener === undefined) return;
    try {
      listener(full);
    } catch (err) {
      this.#deps.logger.logError('event listener threw', err, this.#runInfo());
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
