import type { WorkflowContext } from '../context.ts';
import type { StepKind } from '../definition/types.ts';
import type { StepError } from '../errors.ts';
import type { FinishedStepStatus, RunStatus, StepResultData } from './events.ts';

export class StepResult {
  readonly stepId: string;
  /** Unique within the run: `fulfillment/update_crm`, `process_orders[3]/process_item`, `pay:recover/manual_review`. */
  readonly path: string;
  readonly kind: StepKind;
  readonly status: FinishedStepStatus;
  readonly output: unknown;
  readonly error: StepError | undefined;
  readonly executionTimeMs: number;
  /** Attempts made for this path, across retries of its parents. 0 when skipped by its own conditions. */
  readonly attempts: number;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Results of nested steps (branches, iterations, the chosen branch), in start order. */
  readonly children: readonly StepResult[];

  constructor(data: StepResultData, children: readonly StepResult[] = []) {
    this.stepId = data.stepId;
    this.path = data.path;
    this.kind = data.kind;
    this.status = data.status;
    this.output = data.output;
    this.error = data.error;
    this.executionTimeMs = data.executionTimeMs;
    this.attempts = data.attempts;
    this.metadata = data.metadata ?? {};
    this.children = children;
  }

  get isSuccess(): boolean {
    return this.status === 'completed';
  }

  /** Failed or cancelled: the step did not do its work. Skipped is neither success nor failure. */
  get isFailure(): boolean {
    return this.status === 'failed' || this.status === 'cancelled';
  }

  get isSkipped(): boolean {
    return this.status === 'skipped';
  }

  toJSON(): StepResultData & { children?: unknown[] } {
    const data: StepResultData = {
      stepId: this.stepId,
      path: this.path,
      kind: this.kind,
      status: this.status,
      output: this.output,
      ...(this.error === undefined ? {} : { error: this.error }),
      executionTimeMs: this.executionTimeMs,
      attempts: this.attempts,
      metadata: this.metadata,
    };
    return this.children.length === 0 ? data : { ...data, children: this.children.map((c) => c.toJSON()) };
  }
}

export interface WorkflowResultInit {
  readonly workflowId: string;
  readonly runId: string;
  readonly status: RunStatus;
  readonly steps: readonly StepResult[];
  readonly context: WorkflowContext;
  readonly error: (StepError & { readonly stepPath?: string }) | undefined;
  readonly totalExecutionTimeMs: number;
  readonly totalSteps: number;
}

export class WorkflowResult {
  /** The workflow definition's id. */
  readonly workflowId: string;
  readonly runId: string;
  readonly status: RunStatus;
  /** Top-level step results in completion order, error-handler replacement steps included. */
  readonly steps: readonly StepResult[];
  /** The context after the last step: initial variables plus every merged output. */
  readonly context: WorkflowContext;
  /** Why the run failed or was cancelled, with the failing step's path. */
  readonly error: (StepError & { readonly stepPath?: string }) | undefined;
  readonly totalExecutionTimeMs: number;
  /** Top-level steps in the definition. */
  readonly totalSteps: number;

  constructor(init: WorkflowResultInit) {
    this.workflowId = init.workflowId;
    this.runId = init.runId;
    this.status = init.status;
    this.steps = init.steps;
    this.context = init.context;
    this.error = init.error;
    this.totalExecutionTimeMs = init.totalExecutionTimeMs;
    this.totalSteps = init.totalSteps;
  }

  /** The seed uses both names. */
  get executionTimeMs(): number {
    return this.totalExecutionTimeMs;
  }

  get isSuccess(): boolean {
    return this.status === 'completed';
  }

  /** The output of the last top-level step that completed with an output. */
  get finalOutput(): unknown {
    for (let i = this.steps.length - 1; i >= 0; i--) {
      const step = this.steps[i]!;
      if (step.isSuccess && step.output !== undefined) return step.output;
    }
    return undefined;
  }

  get failedSteps(): readonly StepResult[] {
    return this.steps.filter((s) => s.isFailure);
  }

  /** Successful / executed top-level steps × 100; skipped steps excluded; 0 when nothing executed. */
  get successRate(): number {
    let executed = 0;
    let succeeded = 0;
    for (const step of this.steps) {
      if (step.isSkipped) continue;
      executed += 1;
      if (step.isSuccess) succeeded += 1;
    }
    return executed === 0 ? 0 : (succeeded / executed) * 100;
  }

  /** Top-level steps of the definition that completed, or whose error handler's replacement did. */
  get stepsCompleted(): number {
    const recovered = new Set<string>();
    let completed = 0;
    for (const step of this.steps) {
      const replaces = step.metadata.replaces;
      if (typeof replaces === 'string') {
        if (step.isSuccess) recovered.add(replaces);
      } else if (step.isSuccess) {
        completed += 1;
      }
    }
    return completed + recovered.size;
  }

  toJSON(): Record<string, unknown> {
    return {
      workflowId: this.workflowId,
      runId: this.runId,
      status: this.status,
      steps: this.steps.map((s) => s.toJSON()),
      context: this.context.toJSON(),
      finalOutput: this.finalOutput,
      error: this.error,
      totalExecutionTimeMs: this.totalExecutionTimeMs,
      successRate: this.successRate,
      stepsCompleted: this.stepsCompleted,
      totalSteps: this.totalSteps,
    };
  }
}
