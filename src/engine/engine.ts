import type { Agent } from '../agents/agent.ts';
import type { ModelProvider } from '../agents/model-provider.ts';
import { WorkflowContext } from '../context.ts';
import { WorkflowCompiler, type CompiledWorkflow, type Registry } from '../definition/compile.ts';
import { newRunId } from '../ids.ts';
import type { WorkflowSource } from '../definition/workflow.ts';
import { compileWorkflowDocument } from '../definition/declarative/index.ts';
import { ReplayModelProvider } from '../agents/replay-provider.ts';
import { ErrorCode, stepError } from '../errors.ts';
import { Limits } from '../limits.ts';
import { WorkflowLogger } from '../observability/workflow-logger.ts';
import type { RunStore } from '../store/run-store.ts';
import type { Tool } from '../tools/tool.ts';
import { systemClock, type Clock } from './clock.ts';
import type { RunEvent, RunStartedEvent } from './events.ts';
import { runInline, type InvocationOutcome, type ToolExecutor, type ToolInvocation } from './executor.ts';
import { Deadlines } from './deadlines.ts';
import { RunEventBus, watchRun, type WatchOptions } from './event-bus.ts';
import { ImmediateJournal, StoreJournal, type RunJournal } from './journal.ts';
import { PoolToolExecutor, type PoolOptions, type PoolStats } from './pool-executor.ts';
import type { StepResult, WorkflowResult } from './results.ts';
import { Run, type RunLimits } from './run.ts';
import { WorkflowStream, type PartialOutput } from './stream.ts';

export type Named<T> = readonly T[] | Readonly<Record<string, T>>;

export interface EngineOptions {
  /** Tools that steps (and declarative definitions) may name. */
  readonly tools?: Named<Tool>;
  readonly agents?: Named<Agent>;
  readonly modelProvider?: ModelProvider;
  /** Where runs are kept. Without one, runs live only in memory (nothing survives the process). */
  readonly store?: RunStore;
  /** The worker pool for module tools; created on first use. */
  readonly pool?: PoolOptions;
  readonly logger?: WorkflowLogger;
  readonly clock?: Clock;
  /** Timeout of tool and agent steps that set none, in seconds (default 300, at most 86,400). */
  readonly defaultStepTimeoutSeconds?: number;
  /** Largest step output, as JSON bytes (default 2 MiB). */
  readonly maxOutputBytes?: number;
  /** Times a workflow-wide error handler may answer `retry` for one step (default 3). */
  readonly maxHandlerRetries?: number;
  /** Record every run's model responses (`model_responded` events) unless a run says otherwise. Default false. */
  readonly recordModelResponses?: boolean;
  /** Hears every committed event of every run, in seq order per run (metrics, audit). What it throws is logged, never fails a run. */
  readonly onEvent?: (event: RunEvent) => void;
  /** Prune runs from the store once they have been finished this long (checked every `sweepSeconds`, default 3600). */
  readonly retention?: { readonly finishedRunMaxAgeSeconds: number; readonly sweepSeconds?: number };
}

export interface ExecuteOptions {
  /** Default: a new time-ordered UUID (version 7). */
  readonly runId?: string;
  /** Aborting cancels the run: running tools are aborted and the run ends `cancelled`. */
  readonly signal?: AbortSignal;
  /** Added to (and overriding) the engine's registered tools for this run. */
  readonly tools?: Named<Tool>;
  readonly agents?: Named<Agent>;
  readonly modelProvider?: ModelProvider;
  /** Every RunEvent of the run, in seq order, as it happens (with a store: once it is stored). */
  readonly onEvent?: (event: RunEvent) => void;
  readonly logger?: WorkflowLogger;
  /**
   * Model tokens (prompt + completion) the whole run may use. A model request that would go over what
   * remains is not sent, and its step fails with BUDGET_EXCEEDED. Default: unlimited.
   */
  readonly tokenBudget?: number;
  /** Record every model response as a `model_responded` event, for a later replay (default: the engine's option). */
  readonly recordModelResponses?: boolean;
  /**
   * Take model responses from this run's recording (a run that recorded them), calling no model; a step
   * asking for a response never recorded fails with MODEL_RESPONSE_NOT_RECORDED. Needs a store.
   */
  readonly replayModelResponsesFrom?: string;
}

export interface RecoveryReport {
  /** Runs resumed; their results settle as they finish. */
  readonly resumed: readonly { readonly runId: string; readonly result: Promise<WorkflowResult> }[];
  /** Runs that could not be resumed (their definition version is not registered); now marked failed. */
  readonly failed: readonly { readonly runId: string; readonly workflowId: string; readonly definitionHash: string }[];
}

/**
 * Runs workflows. Holds the tool and agent registry, the model provider, the store and the worker
 * pool; one engine serves any number of concurrent runs. Call `close()` to stop the pool.
 */
export class WorkflowEngine {
  readonly #options: EngineOptions;
  readonly #registry: Registry;
  readonly #logger: WorkflowLogger;
  readonly #executor: ToolExecutor;
  readonly #limits: RunLimits;
  readonly #compiler = new WorkflowCompiler();
  /** Code-defined workflows by `{id}@{hash}`: what recovery can resume. */
  readonly #registered = new Map<string, WorkflowSource>();
  /** Definition versions already written to the store by this engine. */
  readonly #storedDefinitions = new Set<string>();
  /** Runs this engine is executing: recovery must not start a second copy of one. */
  readonly #active = new Set<string>();
  /** Every committed event of every run, for watchers. */
  readonly #bus: RunEventBus;
  readonly #deadlines = new Deadlines();
  #pool: PoolToolExecutor | undefined;
  #retentionTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: EngineOptions = {}) {
    this.#options = options;
    this.#limits = resolveLimits(options);
    this.#retentionTimer = this.#scheduleRetention(options.retention);
    this.#registry = {
      tools: byName(options.tools, 'tools'),
      agents: byName(options.agents, 'agents'),
      hasModelProvider: options.modelProvider !== undefined,
    };
    this.#logger = options.logger ?? new WorkflowLogger();
    const observerFailed = (err: unknown) => this.#logger.logError('engine onEvent observer threw', err, { runId: '-', workflowId: '-' });
    this.#bus = new RunEventBus(options.onEvent, observerFailed);
    this.#executor = {
      run: (invocation: ToolInvocation): Promise<InvocationOutcome> => {
        if (invocation.tool.execution.kind === 'inline') return runInline(invocation);
        if (this.#closed) return Promise.resolve({ kind: 'error', error: stepError(ErrorCode.POOL_CLOSED, `tool ${invocation.tool.name}: the engine is closed`) });
        return this.pool().run(invocation);
      },
      close: async () => this.#pool?.close(),
    };
  }

  /**
   * Makes a code-defined workflow resumable: recovery finds a run's definition by id and content hash
   * among the registered ones. Register every version that may still have unfinished runs.
   */
  register(workflow: WorkflowSource): { readonly workflowId: string; readonly definitionHash: string } {
    const version = this.validate(workflow);
    this.#registered.set(`${version.workflowId}@${version.definitionHash}`, workflow);
    return version;
  }

  /** Compiles a workflow against this engine's tools and agents (throws WorkflowDefinitionError), keeping nothing. */
  validate(workflow: WorkflowSource): { readonly workflowId: string; readonly definitionHash: string } {
    const compiled = this.#compiler.compile(workflow, this.#registry);
    return { workflowId: compiled.id, definitionHash: compiled.definitionHash };
  }

  /** As `register`, and writes the definition version to the store (a no-op without one). */
  async registerDurably(workflow: WorkflowSource): Promise<{ readonly workflowId: string; readonly definitionHash: string }> {
    const registered = this.register(workflow);
    const store = this.#options.store;
    if (store !== undefined) await this.#storeDefinition(store, this.#compiler.compile(workflow, this.#registry), workflow);
    return registered;
  }

  /**
   * A definition version by id and hash: a registered one, or a declarative one compiled back from the
   * store (and registered). Undefined when neither holds it, or when the stored document no longer
   * compiles against this engine's tools and agents to the same version.
   */
  async loadDefinition(workflowId: string, definitionHash: string): Promise<WorkflowSource | undefined> {
    const registered = this.#registered.get(`${workflowId}@${definitionHash}`);
    if (registered !== undefined) return registered;
    const record = await this.#options.store?.getDefinition(workflowId, definitionHash);
    if (record === undefined || record.kind !== 'declarative') return undefined;
    let workflow: WorkflowSource;
    try {
      workflow = compileWorkflowDocument(JSON.parse(record.document), { tools: this.#registry.tools.values(), agents: this.#registry.agents.values() });
    } catch (err) {
      this.#logger.logError(`stored definition ${workflowId}@${definitionHash.slice(0, 12)} no longer compiles`, err, { runId: '-', workflowId });
      return undefined;
    }
    const { definitionHash: hash } = this.register(workflow);
    if (hash !== definitionHash) return undefined;
    this.#storedDefinitions.add(`${workflowId}@${definitionHash}`);
    return workflow;
  }

  /** Runs a workflow to its end. Rejects before any step runs if the definition is invalid, or if the store fails. */
  async executeWorkflow(workflow: WorkflowSource, ctx: WorkflowContext, options: ExecuteOptions = {}): Promise<WorkflowResult> {
    const started = this.#start(workflow, ctx, options, options.onEvent);
    const run = started instanceof Run ? started : await started;
    return this.#track(run, ctx);
  }

  /** Runs a workflow, yielding each top-level StepResult as it completes; `stream.result` gives the WorkflowResult. */
  executeWorkflowStream(workflow: WorkflowSource, ctx: WorkflowContext, options: ExecuteOptions & { readonly partialOutput: true }): WorkflowStream<StepResult | PartialOutput>;
  executeWorkflowStream(workflow: WorkflowSource, ctx: WorkflowContext, options?: ExecuteOptions & { readonly partialOutput?: false }): WorkflowStream;
  executeWorkflowStream(workflow: WorkflowSource, ctx: WorkflowContext, options: ExecuteOptions & { readonly partialOutput?: boolean } = {}): WorkflowStream<StepResult | PartialOutput> {
    return new WorkflowStream<StepResult | PartialOutput>(async (push, signal) => {
      let run: Run | undefined;
      const caller = options.signal;
      const partial = options.partialOutput === true;
      const listener = (event: RunEvent): void => {
        if ('parent' in event && event.parent === undefined && event.type !== 'step_started') {
          push(run!.projection.stepResult(event.path) as StepResult);
        } else if (partial && event.type === 'step_output_delta') {
          push({ kind: 'partial_output', stepPath: event.path, attempt: event.attempt, agent: event.agent, text: event.text });
        }
        // The caller's listener after the stream's, and on its own: a throw there must not cost the stream.
        if (options.onEvent !== undefined) {
          try {
            options.onEvent(event);
          } catch (err) {
            this.#logger.logError('onEvent listener threw', err, { runId: event.runId, workflowId: workflow.id });
          }
        }
      };
      run = await this.#start(workflow, ctx, { ...options, signal: caller === undefined ? signal : AbortSignal.any([caller, signal]) }, listener);
      return this.#track(run, ctx);
    });
  }

  /**
   * Resumes every run the store holds unfinished: recorded step results are replayed without running
   * those steps again; steps that were in flight run again (same idempotency key, next attempt). A run
   * whose definition version is not registered is marked failed with DEFINITION_NOT_REGISTERED.
   */
  async recover(): Promise<RecoveryReport> {
    const store = this.#options.store;
    if (store === undefined) return { resumed: [], failed: [] };
    const resumed: { runId: string; result: Promise<WorkflowResult> }[] = [];
    const failed: { runId: string; workflowId: string; definitionHash: string }[] = [];
    for (const record of await store.unfinishedRuns()) {
      if (this.#active.has(record.runId)) continue;
      const source = await this.loadDefinition(record.workflowId, record.definitionHash);
      if (source === undefined) {
        const error = stepError(
          ErrorCode.DEFINITION_NOT_REGISTERED,
          `run ${record.runId} is pinned to workflow ${record.workflowId} version ${record.definitionHash.slice(0, 12)}, which is not registered (engine.register it to resume the run)`,
        );
        await store.append([{ type: 'run_failed', seq: record.lastSeq + 1, runId: record.runId, at: Date.now(), error }]);
        failed.push({ runId: record.runId, workflowId: record.workflowId, definitionHash: record.definitionHash });
        continue;
      }
      const history = await store.readEvents(record.runId);
      const start = history[0] as RunStartedEvent;
      const ctx = new WorkflowContext({ ...start.input, workflowId: start.input.workflowId });
      const compiled = this.#compiler.compile(source, this.#registry);
      // A replaying run keeps replaying after a crash (its budget and recording come back from its history).
      const replaying = start.replayModelResponsesFrom;
      const options = replaying === undefined ? { runId: record.runId } : { runId: record.runId, modelProvider: await this.#replayProvider(replaying) };
      const run = this.#newRun(compiled, this.#registry, options, undefined, source, history, replaying);
      resumed.push({ runId: record.runId, result: this.#track(run, ctx) });
    }
    return { resumed, failed };
  }

  /**
   * A run's events after `afterSeq`, from the store and then live, ending after its terminal event: no
   * gap, no duplicate. A watcher more than `maxBuffered` events behind is ended with WATCH_TOO_SLOW and
   * resumes from the last seq it received. Needs a store.
   */
  watchRun(runId: string, options: WatchOptions = {}): AsyncGenerator<RunEvent, void, undefined> {
    const store = this.#options.store;
    if (store === undefined) throw new TypeError('WorkflowEngine.watchRun needs a store (new WorkflowEngine({ store }))');
    return watchRun(store, this.#bus, runId, options);
  }

  /** Deletes runs that finished more than `olderThanSeconds` ago from the store; returns how many. */
  async pruneFinishedRuns(olderThanSeconds: number): Promise<number> {
    const store = this.#options.store;
    if (store === undefined) return 0;
    return store.pruneFinished(Date.now() - olderThanSeconds * 1000);
  }

  /** Runs executing in this engine now (started or resumed, not finished). */
  get activeRunCount(): number {
    return this.#active.size;
  }

  /** The pool's current figures, or undefined before the first pool tool ran. */
  poolStats(): PoolStats | undefined {
    return this.#pool?.stats();
  }

  /** Stops the pool and the retention sweep. Runs still in flight are not waited for; the store is the caller's to close. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#retentionTimer);
    await this.#executor.close();
  }

  #scheduleRetention(retention: EngineOptions['retention']): NodeJS.Timeout | undefined {
    if (retention === undefined) return undefined;
    const { finishedRunMaxAgeSeconds: maxAge, sweepSeconds = 3600 } = retention;
    if (!(maxAge > 0) || !(sweepSeconds > 0) || sweepSeconds > Limits.maxTimeoutSeconds) {
      throw new RangeError(`WorkflowEngine: retention needs finishedRunMaxAgeSeconds > 0 and sweepSeconds in (0, ${Limits.maxTimeoutSeconds}]`);
    }
    const sweep = () => {
      this.pruneFinishedRuns(maxAge).catch((err: unknown) => this.#logger.logError('pruning finished runs failed', err, { runId: '-', workflowId: '-' }));
    };
    // A sweep must not keep the process alive on its own.
    return setInterval(sweep, sweepSeconds * 1000).unref();
  }

  private pool(): PoolToolExecutor {
    this.#pool ??= new PoolToolExecutor(this.#options.pool, (err) => this.#logger.logError('tool pool error', err, { runId: '-', workflowId: '-' }));
    return this.#pool;
  }

  async #track(run: Run, ctx: WorkflowContext): Promise<WorkflowResult> {
    this.#active.add(run.runId);
    try {
      return await run.execute(ctx);
    } finally {
      this.#active.delete(run.runId);
    }
  }

  /** A Run ready to execute; a promise only the first time a definition version must be stored. */
  #start(
    workflow: WorkflowSource,
    ctx: WorkflowContext,
    options: ExecuteOptions,
    listener: ((event: RunEvent) => void) | undefined,
    replaying?: string,
  ): Run | Promise<Run> {
    if (!(ctx instanceof WorkflowContext)) throw new TypeError('execute: ctx must be a WorkflowContext');
    if (this.#closed) throw new Error('WorkflowEngine is closed');
    checkTokenBudget(options.tokenBudget);
    const replayFrom = options.replayModelResponsesFrom;
    if (replayFrom !== undefined) {
      return this.#replayProvider(replayFrom).then((modelProvider) => this.#start(workflow, ctx, { ...options, replayModelResponsesFrom: undefined, modelProvider }, listener, replayFrom));
    }
    const registry = this.#registryFor(options);
    const compiled = this.#compiler.compile(workflow, registry);
    const store = this.#options.store;
    const version = `${compiled.id}@${compiled.definitionHash}`;
    const run = () => this.#newRun(compiled, registry, options, listener, workflow, undefined, replaying);
    if (store === undefined || this.#storedDefinitions.has(version)) return run();
    return this.#storeDefinition(store, compiled, workflow).then(run);
  }

  /** A provider serving the model responses `runId` recorded. */
  async #replayProvider(runId: string): Promise<ReplayModelProvider> {
    const store = this.#options.store;
    if (store === undefined) throw new TypeError('replayModelResponsesFrom needs a store (new WorkflowEngine({ store }))');
    if ((await store.getRun(runId)) === undefined) throw new TypeError(`replayModelResponsesFrom: run ${runId} does not exist`);
    return ReplayModelProvider.fromEvents(await store.readEvents(runId), `run ${runId}`);
  }

  async #storeDefinition(store: RunStore, compiled: CompiledWorkflow, workflow: WorkflowSource): Promise<void> {
    const version = `${compiled.id}@${compiled.definitionHash}`;
    if (this.#storedDefinitions.has(version)) return;
    const kind = workflow.definitionDocument === undefined ? 'code' : 'declarative';
    await store.putDefinition({ workflowId: compiled.id, hash: compiled.definitionHash, document: compiled.document, kind, createdAt: Date.now() });
    this.#storedDefinitions.add(version);
  }

  #newRun(
    compiled: CompiledWorkflow,
    registry: Registry,
    options: ExecuteOptions,
    listener: ((event: RunEvent) => void) | undefined,
    source: WorkflowSource,
    history: readonly RunEvent[] | undefined,
    replaying?: string,
  ): Run {
    const runId = options.runId ?? newRunId();
    const logger = options.logger ?? source.logger ?? this.#logger;
    const onListenerError = (err: unknown) => logger.logError('onEvent listener threw', err, { runId, workflowId: compiled.id });
    const store = this.#options.store;
    const bus = this.#bus;
    const publish = listener === undefined ? (event: RunEvent) => bus.publish(event) : (event: RunEvent) => (bus.publish(event), listener(event));
    // Alone: no other run here to share a commit with, and no stream whose writes a quicker commit would hold back.
    const alone = () => listener === undefined && this.#active.size <= 1 && !bus.watched(runId);
    const journal: RunJournal = store === undefined ? new ImmediateJournal(publish, onListenerError) : new StoreJournal(store, publish, onListenerError, alone);
    return new Run({
      runId,
      workflow: compiled,
      registry,
      executor: this.#executor,
      modelProvider: options.modelProvider ?? this.#options.modelProvider,
      clock: this.#options.clock ?? systemClock,
      deadlines: this.#deadlines,
      logger,
      limits: this.#limits,
      signal: options.signal,
      journal,
      ...(history === undefined ? {} : { history }),
      ...(options.tokenBudget === undefined ? {} : { tokenBudget: options.tokenBudget }),
      recordModelResponses: options.recordModelResponses ?? this.#options.recordModelResponses ?? false,
      ...(replaying === undefined ? {} : { replayModelResponsesFrom: replaying }),
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

/** Engine options are checked once, here, naming the option and its limit. */
function resolveLimits(options: EngineOptions): RunLimits {
  const timeout = options.defaultStepTimeoutSeconds ?? Limits.defaultStepTimeoutSeconds;
  if (typeof timeout !== 'number' || !(timeout > 0) || timeout > Limits.maxTimeoutSeconds) {
    throw new RangeError(`WorkflowEngine: defaultStepTimeoutSeconds must be in (0, ${Limits.maxTimeoutSeconds}], got ${String(timeout)}`);
  }
  const maxOutputBytes = options.maxOutputBytes ?? Limits.maxOutputBytes;
  if (!Number.isInteger(maxOutputBytes) || maxOutputBytes < 1 || maxOutputBytes > 64 * 1024 * 1024) {
    throw new RangeError(`WorkflowEngine: maxOutputBytes must be an integer from 1 to ${64 * 1024 * 1024}, got ${String(maxOutputBytes)}`);
  }
  const maxHandlerRetries = options.maxHandlerRetries ?? Limits.maxHandlerRetries;
  if (!Number.isInteger(maxHandlerRetries) || maxHandlerRetries < 0 || maxHandlerRetries > Limits.maxRetries) {
    throw new RangeError(`WorkflowEngine: maxHandlerRetries must be an integer from 0 to ${Limits.maxRetries}, got ${String(maxHandlerRetries)}`);
  }
  return { defaultStepTimeoutMs: Math.max(1, Math.round(timeout * 1000)), maxOutputBytes, maxHandlerRetries };
}

function checkTokenBudget(tokens: number | undefined): void {
  if (tokens === undefined) return;
  if (!Number.isInteger(tokens) || tokens < 1 || tokens > Limits.maxTokenBudget) {
    throw new RangeError(`execute: tokenBudget must be an integer from 1 to ${Limits.maxTokenBudget}, got ${String(tokens)}`);
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
