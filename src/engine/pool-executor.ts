import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { ErrorCode, stepError, type StepError } from '../errors.ts';
import { Limits } from '../limits.ts';
import { cancellationError } from './cancellation.ts';
import type { InvocationOutcome, ToolInvocation } from './executor.ts';
import { decodeOutput, type ToolOutcome, type ToolTask } from './worker-protocol.ts';

export interface PoolResourceLimits {
  readonly maxOldGenerationSizeMb?: number;
  readonly maxYoungGenerationSizeMb?: number;
  readonly codeRangeSizeMb?: number;
  readonly stackSizeMb?: number;
}

export interface PoolOptions {
  /** Threads kept running. Default: `maxThreads`, so parallel branches start at once. */
  readonly minThreads?: number;
  /** Default: the machine's available parallelism. */
  readonly maxThreads?: number;
  /** Tasks waiting for a thread before new ones fail with POOL_QUEUE_FULL. Default 4096. */
  readonly maxQueue?: number;
  /** How long an idle thread above `minThreads` lives. Default 30 s. */
  readonly idleTimeoutMs?: number;
  /** Per-thread V8 limits; a tool that exceeds them fails with WORKER_OUT_OF_MEMORY. Default old gen 1024 MB. */
  readonly resourceLimits?: PoolResourceLimits;
  /** Node flags for the threads. Default: none for compiled code, tsx for TypeScript sources. */
  readonly execArgv?: readonly string[];
}

export interface PoolStats {
  readonly threads: number;
  /** Tasks running or waiting for a thread. */
  readonly inFlight: number;
  readonly completed: number;
  readonly utilization: number;
}

const workerExtension = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const workerUrl = new URL(`../../workers/tool-worker${workerExtension}`, import.meta.url);

/** Runs module tools on a Piscina pool. Aborting an invocation's signal terminates its thread. */
export class PoolToolExecutor {
  readonly #pool: Piscina<ToolTask, ToolOutcome>;
  /** Tasks handed to Piscina and not settled: running plus queued. */
  #inFlight = 0;
  readonly #capacity: number;
  readonly #maxQueue: number;
  #closed = false;

  constructor(options: PoolOptions = {}, onPoolError: (err: Error) => void = () => {}) {
    const maxThreads = options.maxThreads ?? availableParallelism();
    const minThreads = Math.min(options.minThreads ?? maxThreads, maxThreads);
    this.#maxQueue = options.maxQueue ?? Limits.defaultPoolMaxQueue;
    this.#capacity = maxThreads + this.#maxQueue;
    this.#pool = new Piscina<ToolTask, ToolOutcome>({
      filename: workerUrl.href,
      minThreads,
      maxThreads,
      // Piscina does not count abortable tasks against maxQueue, so the bound is kept here (#capacity).
      maxQueue: this.#maxQueue,
      idleTimeout: options.idleTimeoutMs ?? 30_000,
      // Abortable tasks never share a thread; one task per thread keeps termination precise.
      concurrentTasksPerWorker: 1,
      // 'sync' parks idle threads in Atomics.wait, so a tool's leftover timers (even a late
      // process.exit) would run during the next, unrelated task and be blamed on it.
      atomics: 'async',
      resourceLimits: { maxOldGenerationSizeMb: 1024, ...options.resourceLimits },
      execArgv: [...(options.execArgv ?? (workerExtension === '.ts' ? ['--import', 'tsx', '--conditions=jaf-source'] : []))],
    });
    // Faults of a thread with no task (e.g. an idle thread dying) arrive here; without a listener they
    // would be thrown as uncaught exceptions and take the process down.
    this.#pool.on('error', onPoolError);
  }

  async run(invocation: ToolInvocation): Promise<InvocationOutcome> {
    const { tool, cancellation } = invocation;
    if (tool.execution.kind !== 'module') throw new Error(`pool asked to run inline tool ${tool.name}`);
    if (this.#closed) return { kind: 'error', error: stepError(ErrorCode.POOL_CLOSED, 'the tool pool is closed') };
    if (cancellation.aborted) return { kind: 'error', error: cancellationError(cancellation) };
    const task: ToolTask = {
      moduleUrl: tool.execution.moduleUrl,
      args: invocation.args,
      runId: invocation.runId,
      stepPath: invocation.stepPath,
      attempt: invocation.attempt,
      userContext: invocation.userContext,
      maxOutputBytes: invocation.maxOutputBytes,
    };
    if (this.#inFlight >= this.#capacity) {
      return { kind: 'error', error: stepError(ErrorCode.POOL_QUEUE_FULL, `tool ${tool.name}: the pool's queue is full (${this.#maxQueue} tasks waiting)`) };
    }
    let outcome: ToolOutcome;
    this.#inFlight += 1;
    try {
      outcome = await this.#pool.run(task, { signal: cancellation.eventTarget() });
    } catch (err) {
      return { kind: 'error', error: cancellation.aborted ? cancellationError(cancellation) : poolFailure(tool.name, err) };
    } finally {
      this.#inFlight -= 1;
    }
    if (typeof outcome === 'object') return { kind: 'error', error: outcome.error };
    return { kind: 'ok', output: decodeOutput(outcome), outputJson: outcome };
  }

  stats(): PoolStats {
    const pool = this.#pool;
    return { threads: pool.threads.length, inFlight: this.#inFlight, completed: pool.completed, utilization: pool.utilization };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.destroy();
  }
}

/** Piscina reports thread faults as plain Errors; this is the one place that reads them. */
function poolFailure(toolName: string, err: unknown): StepError {
  const e = err as (Error & { code?: string }) | undefined;
  const message = e?.message ?? String(err);
  if (e?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return stepError(ErrorCode.WORKER_OUT_OF_MEMORY, `tool ${toolName} exhausted its thread's memory limit; the thread was replaced`);
  }
  if (message.startsWith('worker exited with code')) {
    return stepError(ErrorCode.WORKER_CRASHED, `tool ${toolName}: ${message} (the thread was replaced)`);
  }
  if (message === 'Task queue is at limit') {
    return stepError(ErrorCode.POOL_QUEUE_FULL, `tool ${toolName}: the pool's task queue is full`);
  }
  if (message === 'Terminating worker thread') {
    return stepError(ErrorCode.POOL_CLOSED, `tool ${toolName}: the tool pool was closed while the step ran`);
  }
  if (e?.name === 'DataCloneError') {
    return stepError(ErrorCode.TOOL_ERROR, `tool ${toolName}: arguments or userContext cannot be sent to a pool thread: ${message}`, undefined, false);
  }
  return stepError(ErrorCode.WORKER_CRASHED, `tool ${toolName}: pool thread failed: ${message}`);
}
