import { randomUUID } from 'node:crypto';
import type { Agent } from '../agents/agent.ts';
import type { ModelProvider } from '../agents/model-provider.ts';
import { WorkflowContext } from '../context.ts';
import { WorkflowCompiler, type Registry } from '../definition/compile.ts';
import type { WorkflowSource } from '../definition/workflow.ts';
import { Limits } from '../limits.ts';
import { WorkflowLogger } from '../observability/workflow-logger.ts';
import type { Tool } from '../tools/tool.ts';
import { systemClock, type Clock } from './clock.ts';
import type { RunEvent } from './events.ts';
import { runInline, type InvocationOutcome, type ToolExecutor, type ToolInvocation } from './executor.ts';
import { PoolToolExecutor, type PoolOptions, type PoolStats } from './pool-executor.ts';
import type { StepResult, WorkflowResult } from './results.ts';
import { Run } from './run.ts';
import { WorkflowStream } from './stream.ts';

export type Named<T> = readonly T[] | Readonly<Record<string, T>>;

export interface EngineOptions {
  /** Tools that steps (and declarative definitions) may name. */
  readonly tools?: Named<Tool>;
  readonly agents?: Named<Agent>;
  readonly modelProvider?: ModelProvider;
  /** The worker pool for module tools; created on first use. */
  readonly pool?: PoolOptions;
  readonly logger?: WorkflowLogger;
  readonly clock?: Clock;
  /** Timeout of tool and agent steps that set none (default 300). */
  readonly defaultStepTimeoutSeconds?: number;
  /** Largest step output, as JSON bytes (default 2 MiB). */
  readonly maxOutputBytes?: number;
  /** Times a workflow-wide error handler may answer `retry` for one step (default 3). */
  readonly maxHandlerRetries?: number;
}

export interface ExecuteOptions {
  /** Default: a random UUID. */
  readonly runId?: string;
  /** Aborting cancels the run: running tools are aborted and the run ends `cancelled`. */
  readonly signal?: AbortSignal;
  /** Added to (and overriding) the engine's registered tools for this run. */
  readonly tools?: Named<Tool>;
  readonly agents?: Named<Agent>;
  readonly modelProvider?: ModelProvider;
  /** Every RunEvent of the run, in seq order, as it happens. */
  readonly onEvent?: (event: RunEvent) => void;
  readonly logger?: WorkflowLogger;
}

/**
 * Runs workflows. Holds the tool and agent registry, the model provider and the worker pool; one
 * engine serves any number of concurrent runs. Call `close()` to stop the pool.
 */
export class WorkflowEngine {
  readonly #options: EngineOptions;
  readonly #registry: Registry;
  readonly #logger: WorkflowLogger;
  readonly #executor: ToolExecutor;
  readonly #compiler = new WorkflowCompiler();
  #pool: PoolToolExecutor | undefined;
  #closed = false;

  constructor(options: EngineOptions = {}) {
    this.#options = options;
    this.#registry = {
      tools: byName(options.tools, 'tools'),
      agents: byName(options.agents, 'agents'),
      hasModelProvider: options.modelProvider !== undefined,
    };
    this.#logger = options.logger ?? new WorkflowLogger();
    this.#executor = {
      run: (invocation: ToolInvocation): Promise<InvocationOutcome> =>
        invocation.tool.execution.kind === 'inline' ? runInline(invocation) : this.pool().run(invocation),
      close: async () => this.#pool?.close(),
    };
  }

  /** Runs a workflow to its end. Rejects (before any step runs) only if the definition is invalid. */
  executeWorkflow(workflow: WorkflowSource, ctx: WorkflowContext, options: ExecuteOptions = {}): Promise<WorkflowResult> {
    try {
      return this.#start(workflow, ctx, options).execute(ctx);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Runs a workflow, yielding each top-level StepResult as it completes; `stream.result` gives the WorkflowResult. */
  executeWorkflowStream(workflow: WorkflowSource, ctx: WorkflowContext, options: ExecuteOptions = {}): WorkflowStream {
    return new WorkflowStream((onStepResult, signal) => {
      let run: Run | undefined;
      const caller = options.signal;
      const combined = caller === undefined ? signal : AbortSignal.any([caller, signal]);
      run = this.#start(workflow, ctx, {
        ...options,
        signal: combined,
        onEvent: (event) => {
          options.onEvent?.(event);
          if ('parent' in event && event.parent === undefined && event.type !== 'step_started') {
            onStepResult(run!.projection.stepResult(event.path) as StepResult);
          }
        },
      });
      return run.execute(ctx);
    });
  }

  /** The pool's current figures, or undefined before the first pool tool ran. */
  poolStats(): PoolStats | undefined {
    return this.#pool?.stats();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#executor.close();
  }

  private pool(): PoolToolExecutor {
    if (this.#closed) throw new Error('WorkflowEngine is closed');
    this.#pool ??= new PoolToolExecutor(this.#options.pool, (err) => this.#logger.logError('tool pool error', err, { runId: '-', workflowId: '-' }));
    return this.#pool;
  }

  #start(workflow: WorkflowSource, ctx: WorkflowContext, options: ExecuteOptions): Run {
    if (!(ctx instanceof WorkflowContext)) throw new TypeError('execute: ctx must be a WorkflowContext');
    if (this.#closed) throw new Error('WorkflowEngine is closed');
    const registry = this.#registryFor(options);
    const compiled = this.#compiler.compile(workflow, registry);
    const defaults = this.#options;
    return new Run({
      runId: options.runId ?? randomUUID(),
      workflow: compiled,
      registry,
      executor: this.#executor,
      modelProvider: options.modelProvider ?? defaults.modelProvider,
      clock: defaults.clock ?? systemClock,
      logger: options.logger ?? workflow.logger ?? this.#logger,
      limits: {
        defaultStepTimeoutMs: (defaults.defaultStepTimeoutSeconds ?? Limits.defaultStepTimeoutSeconds) * 1000,
        maxOutputBytes: defaults.maxOutputBytes ?? Limits.maxOutputBytes,
        maxHandlerRetries: defaults.maxHandlerRetries ?? Limits.maxHandlerRetries,
      },
      signal: options.signal,
      onEvent: options.onEvent,
    });
  }

  #registryFor(options: ExecuteOptions): Registry {
    if (options.tools === undefined && options.agents === undefined && options.modelProvider === undefined) return this.#registry;
    return {
      tools: new Map([...this.#registry.tools, ...byName(options.tools, 'tools')]),
      agents: new Map([...this.#registry.agents, ...byName(options.agents, 'agents')]),
      hasModelProvider: this.#registry.hasModelProvider || options.modelProvider !== undefined,
    };
  }
}

function byName<T extends { readonly name: string }>(items: Named<T> | undefined, what: string): Map<string, T> {
  const map = new Map<string, T>();
  if (items === undefined) return map;
  const entries: [string, T][] = Array.isArray(items) ? (items as readonly T[]).map((item) => [item.name, item]) : Object.entries(items as Record<string, T>);
  for (const [name, item] of entries) {
    if (map.has(name)) throw new TypeError(`WorkflowEngine: two ${what} are named ${name}`);
    map.set(name, item);
  }
  return map;
}

/** The seed's free function: streams a run on a short-lived engine (closed when the run ends). */
export function executeWorkflowStream(workflow: WorkflowSource, ctx: WorkflowContext, options: ExecuteOptions & EngineOptions = {}): WorkflowStream {
  const engine = new WorkflowEngine(options);
  const stream = engine.executeWorkflowStream(workflow, ctx, options);
  stream.result.then(
    () => engine.close(),
    () => engine.close(),
  );
  return stream;
}
