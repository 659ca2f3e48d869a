import type { WorkflowContext } from '../context.ts';
import type { ExecuteOptions } from '../engine/engine.ts';
import type { WorkflowResult } from '../engine/results.ts';
import type { WorkflowLogger } from '../observability/workflow-logger.ts';
import type { GlobalErrorHandler, StepErrorHandler, StepLike } from './types.ts';

/** What the engine needs from a workflow; `Workflow` and anything shaped like it qualify. */
export interface WorkflowSource {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly steps: readonly StepLike[];
  readonly errorHandlers: ReadonlyMap<string, StepErrorHandler>;
  readonly globalErrorHandler: GlobalErrorHandler | undefined;
  readonly logger: WorkflowLogger | undefined;
  /** For workflows built from a document: the canonical document, which identifies the version (its hash). */
  readonly definitionDocument?: string | undefined;
}

export class Workflow implements WorkflowSource {
  readonly id: string;
  name: string;
  description: string;
  readonly steps: StepLike[] = [];
  readonly errorHandlers = new Map<string, StepErrorHandler>();
  globalErrorHandler: GlobalErrorHandler | undefined;
  logger: WorkflowLogger | undefined;
  definitionDocument: string | undefined;

  constructor(id: string, name?: string, description = '') {
    if (typeof id !== 'string' || id === '') throw new TypeError('Workflow: id must be a non-empty string');
    this.id = id;
    this.name = name ?? id;
    this.description = description;
  }

  addStep(step: StepLike): this {
    this.steps.push(step);
    return this;
  }

  /** When top-level step `stepId` fails, `handler(result, ctx)` may return a replacement step to run instead. */
  addErrorHandler(stepId: string, handler: StepErrorHandler): this {
    if (typeof handler !== 'function') throw new TypeError(`Workflow ${this.id}: error handler for ${stepId} must be a function`);
    this.errorHandlers.set(stepId, handler);
    return this;
  }

  /**
   * Runs the workflow. Without `options.engine`, a short-lived engine is made for this run (and its
   * tool pool, if the workflow uses pool tools, is closed afterwards).
   */
  async execute(ctx: WorkflowContext, options: ExecuteOptions & { engine?: import('../engine/engine.ts').WorkflowEngine } = {}): Promise<WorkflowResult> {
    const { engine, ...rest } = options;
    if (engine !== undefined) return engine.executeWorkflow(this, ctx, rest);
    const { WorkflowEngine } = await import('../engine/engine.ts');
    const ephemeral = new WorkflowEngine();
    try {
      return await ephemeral.executeWorkflow(this, ctx, rest);
    } finally {
      await ephemeral.close();
    }
  }
}
