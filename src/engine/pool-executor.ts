import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { ErrorCode, stepError, type StepError } from '../errors.ts';
import { Limits } from '../limits.ts';
import { cancellationError, type Cancellation } from './cancellation.ts';
import type { InvocationOutcome, ToolInvocation } from './executor.ts';
import { decodeOutput, encodeTask, type ToolOutcome, type WireTask } from './worker-protocol.ts';

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
  /** Hears how long each task waited for a free thread, in seconds (0 when one was free): for metrics. */
  readonly onWait?: (seconds: number) => void;
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

/** A task waiting for a thread, in the engine's own queue (a doubly linked list: O(1) removal on abort). */
interface Waiting {
  readonly task: WireTask;
  readonly cancellation: Cancellation;
  readonly toolName: string;
  readonly queuedAt: number;
  readonly resolve: (outcome: InvocationOutcome) => void;
  unsubscribe: () => void;
  prev: Waiting | undefined;
  next: Waiting | undefined;
}

/**
 * Runs module tools on a Piscina pool. Aborting an invocation's signal terminates its thread.
 *
 * The queue is kept here, not in Piscina: Piscina never queues an abortable task in its task queue but
 * re-offers it to every thread on each submission and completion (a balancer pass and interface objects
 * per thread each time); with 64 tasks waiting that ran at ~0.8x the tasks/s of signal-free tasks, and
 * at ~0.9-1.0x with the queue kept here. Piscina is handed at most one task per thread, so each
 * submission finds a free thread at once; a finished task hands its thread to the oldest waiting one in
 * the same turn, as Piscina's own queue would.
 */
export class PoolToolExecutor {
  readonly #pool: Piscina<WireTask, ToolOutcome>;
  /** Tasks handed to Piscina and not settled (at most `#threads`). */
  #running = 0;
  /** Tasks waiting here for a thread. */
  #waitingCount = 0;
  #head: Waiting | undefined;
  #tail: Waiting | undefined;
  readonly #threads: number;
  readonly #maxQueue: number;
  readonly #onWait: ((seconds: number) => void) | undefined;
  #closed = false;

  constructor(options: PoolOptions = {}, onPoolError: (err: Error) => void = () => {}) {
    this.#onWait = options.onWait;
    const maxThreads = options.maxThreads ?? availableParallelism();
    const minThreads = Math.min(options.minThreads ?? maxThreads, maxThreads);
    this.#maxQueue = options.maxQueue ?? Limits.defaultPoolMaxQueue;
    this.#threads = maxThreads;
    this.#pool = new Piscina<WireTask, ToolOutcome>({
      filename: workerUrl.href,
      minThreads,
      maxThreads,
      // Tasks wait in this class's queue; Piscina holds one only while a replacement thread starts.
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

  run(invocation: ToolInvocation): Promise<InvocationOutcome> {
    const { tool, cancellation } = invocation;
    if (tool.execution.kind !== 'module') return Promise.reject(new Error(`pool asked to run inline tool ${tool.name}`));
    if (this.#closed) return Promise.resolve({ kind: 'error', error: stepError(ErrorCode.POOL_CLOSED, 'the tool pool is closed') });
    if (cancellation.aborted) return Promise.resolve({ kind: 'error', error: cancellationError(cancellation) });
    const task = encodeTask({
      moduleUrl: tool.execution.moduleUrl,
      args: invocation.args,
      runId: invocation.runId,
      stepPath: invocation.stepPath,
      attempt: invocation.attempt,
      userContext: invocation.userContext,
      maxOutputBytes: invocation.maxOutputBytes,
    });
    if (this.#running < this.#threads) {
      this.#onWait?.(0);
      return this.#dispatch(task, cancellation, tool.name);
    }
    if (this.#waitingCount >= this.#maxQueue) {
      return Promise.resolve({ kind: 'error', error: stepError(ErrorCode.POOL_QUEUE_FULL, `tool ${tool.name}: the pool's queue is full (${this.#maxQueue} tasks waiting)`) });
    }
    return new Promise<InvocationOutcome>((resolve) => {
      const waiting: Waiting = { task, cancellation, toolName: tool.name, queuedAt: performance.now(), resolve, unsubscribe: noop, prev: this.#tail, next: undefined };
      if (this.#tail === undefined) this.#head = waiting;
      else this.#tail.next = waiting;
      this.#tail = waiting;
      this.#waitingCount += 1;
      // Cancelled or timed out while waiting: it leaves the queue and never reaches a thread.
      waiting.unsubscribe = cancellation.onAbort(() => {
        this.#unlink(waiting);
        resolve({ kind: 'error', error: cancellationError(cancellation) });
      });
    });
  }

  stats(): PoolStats {
    const pool = this.#pool;
    return { threads: pool.threads.length, inFlight: this.#running + this.#waitingCount, completed: pool.completed, utilization: pool.utilization };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (let waiting = this.#head; waiting !== undefined; waiting = this.#head) {
      this.#unlink(waiting);
      waiting.resolve({ kind: 'error', error: stepError(ErrorCode.POOL_CLOSED, `tool ${waiting.toolName}: the tool pool was closed before the step ran`) });
    }
    await this.#pool.destroy();
  }

  #dispatch(task: WireTask, cancellation: Cancellation, toolName: string): Promise<InvocationOutcome> {
    this.#running += 1;
    return this.#pool.run(task, { signal: cancellation.eventTarget() }).then(
      (outcome): InvocationOutcome => {
        this.#release();
        if (typeof outcome === 'object') return { kind: 'error', error: outcome.error };
        return { kind: 'ok', output: decodeOutput(outcome), outputJson: outcome };
      },
      (err: unknown): InvocationOutcome => {
        this.#release();
        return { kind: 'error', error: cancellation.aborted ? cancellationError(cancellation) : poolFailure(toolName, err) };
      },
    );
  }

  /** A task settled: its thread goes to the oldest waiting task, posted now rather than a turn later. */
  #release(): void {
    this.#running -= 1;
    const next = this.#head;
    if (next === undefined || this.#closed) return;
    this.#unlink(next);
    this.#onWait?.((performance.now() - next.queuedAt) / 1000);
    const dispatched = this.#dispatch(next.task, next.cancellation, next.toolName);
    dispatched.then(next.resolve);
  }

  #unlink(waiting: Waiting): void {
    waiting.unsubscribe();
    waiting.unsubscribe = noop;
    if (waiting.prev === undefined) this.#head = waiting.next;
    else waiting.prev.next = waiting.next;
    if (waiting.next === undefined) this.#tail = waiting.prev;
    else waiting.next.prev = waiting.prev;
    waiting.prev = undefined;
    waiting.next = undefined;
    this.#waitingCount -= 1;
  }
}

function noop(): void {}

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
