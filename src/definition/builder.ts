import type { Agent } from '../agents/agent.ts';
import type { WorkflowLogger } from '../observability/workflow-logger.ts';
import type { Tool } from '../tools/tool.ts';
import { AgentStep, ConditionalStep, LoopStep, ParallelStep, ToolStep } from './steps.ts';
import type { Condition, GlobalErrorHandler, LoopCondition, StepErrorHandler, StepLike } from './types.ts';
import { Workflow } from './workflow.ts';

export class WorkflowBuilder {
  readonly #workflow: Workflow;

  constructor(id: string, name?: string) {
    this.#workflow = new Workflow(id, name);
  }

  description(text: string): this {
    this.#workflow.description = text;
    return this;
  }

  addStep(step: StepLike): this {
    this.#workflow.addStep(step);
    return this;
  }

  addAgentStep(id: string, agent: Agent | string, message?: string): this {
    return this.addStep(new AgentStep(id, agent, message));
  }

  addToolStep(id: string, tool: Tool | string, args?: unknown): this {
    return this.addStep(new ToolStep(id, tool, args));
  }

  addConditionalStep(id: string, condition: Condition, trueStep?: StepLike, falseStep?: StepLike): this {
    return this.addStep(new ConditionalStep(id, condition, trueStep, falseStep));
  }

  addParallelStep(id: string, steps: readonly StepLike[], waitForAll = true): this {
    return this.addStep(new ParallelStep(id, steps, waitForAll));
  }

  addLoopStep(id: string, step: StepLike, condition: LoopCondition, maxIterations?: number): this {
    return this.addStep(new LoopStep(id, step, condition, maxIterations));
  }

  withLogger(logger: WorkflowLogger): this {
    this.#workflow.logger = logger;
    return this;
  }

  /**
   * `withErrorHandler(stepId, (result, ctx) => replacementStep | null)` handles one top-level step;
   * `withErrorHandler((error, step, ctx) => ({ action: 'retry' | 'fail' | 'continue' }))` decides for
   * every step without a handler of its own.
   */
  withErrorHandler(stepId: string, handler: StepErrorHandler): this;
  withErrorHandler(handler: GlobalErrorHandler): this;
  withErrorHandler(first: string | GlobalErrorHandler, handler?: StepErrorHandler): this {
    if (typeof first === 'string') {
      if (handler === undefined) throw new TypeError(`withErrorHandler(${first}, handler): handler is missing`);
      this.#workflow.addErrorHandler(first, handler);
    } else {
      if (typeof first !== 'function') throw new TypeError('withErrorHandler: expects (stepId, handler) or a handler function');
      this.#workflow.globalErrorHandler = first;
    }
    return this;
  }

  build(): Workflow {
    return this.#workflow;
  }
}
