import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { ErrorCode, stepError, type StepError } from '../errors.ts';
import { Limits } from '../limits.ts';
import { Cancellation, cancellationError } from './cancellation.ts';
import type { InvocationOutcome, ToolInvocation } from './executor.ts';
import { defaultBatchMaxTasks, defaultBatchMaxToolMs, FastToolTracker, type PoolBatchingOptions } from './pool-batching.ts';
import { noop, WaitQueue, type Waiting } from './pool-queue.ts';
import { BatchInFlight } from './pool-batch.ts';
import { decodeOutput, encodeTask, type BatchOutcome, type ToolOutcome, type WireBatch, type WireTask } from './worker-protocol.ts';

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
  /** Fast tools waiting for a thread go to it several at a time (see PoolToolExecutor). `false` turns it off. */
  readonly batching?: PoolBatchingOptions | false;
}

export interface PoolStats {
  readonly threads: number;
  /** Tasks running or waiting for a thread. */
  readonly inFlight: number;
  /** Tasks waiting for a thread. */
  readonly waiting: number;
  /** Tasks that ran to an outcome (a result or the tool's own error). */
  readonly completed: number;
  readonly utilization: number;
  /** Batches of two or more tasks sent to threads, and the tasks they carried. */
  readonly batches: number;
  readonly batchedTasks: number;
}

const workerExtension = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const workerUrl = new URL(`../../workers/tool-worker${workerExtension}`, import.meta.url);

/**
 * Runs module tools on a Piscina pool. Aborting an invocation's signal terminates its thread.
 *
 * The queue is kept here, not in Piscina: Piscina never queues an abortable task in its task queue but
 * re-offers it to every thread on each submission and completion (a balancer pass and interface objects
 * per thread each time); with 64 tasks waiting that ran at ~0.8x the tasks/s of signal-free tasks, and
 * at ~0.9-1.0x with the queue kept here. Piscina is handed at most one task per thread, so each
 * submission finds a free thread at once; a finished task hands its thread to the oldest waiting one in
 * the same turn, as Piscina's own queue would.
 *
 * Batching: when tasks wait and a thread frees up, the oldest waiting task goes to it together with
 * up to `maxTasks - 1` more waiting tasks of fast tools (FastToolTracker), at most the backlog's share
 * per thread, as one Piscina task. Nothing is batched while a thread is free, so parallel branches
 * still start on different threads. A batch's tasks run one after another; one cancelled before its
 * turn is skipped, one cancelled during its turn kills the thread as a lone task would. When a thread
 * dies mid-batch (that kill, a crash, memory), the task it was running gets the fault and the others
 * run again alone: those that had not started lose nothing, those that had finished run a second time
 * with the same idempotency key and attempt, as steps in flight at a crash do.
 */
export class PoolToolExecutor {
  readonly #pool: Piscina<WireTask | WireBatch, ToolOutcome | BatchOutcome>;
  /** Piscina tasks (single or batch) not settled: at most one per thread. */
  #running = 0;
  /** Tool tasks on threads (a batch counts its tasks). */
  #runningTasks = 0;
  #completed = 0;
  readonly #queue = new WaitQueue();
  readonly #threads: number;
  readonly #maxQueue: number;
  readonly #onWait: ((seconds: number) => void) | undefined;
  readonly #batchMaxTasks: number;
  readonly #fast: FastToolTracker | undefined;
  #batches = 0;
  #batchedTasks = 0;
  #closed = false;

  constructor(options: PoolOptions = {}, onPoolError: (err: Error) => void = () => {}) {
    this.#onWait = options.onWait;
    const maxThreads = options.maxThreads ?? availableParallelism();
    const minThreads = Math.min(options.minThreads ?? maxThreads, maxThreads);
    this.#maxQueue = options.maxQueue ?? Limits.defaultPoolMaxQueue;
    this.#threads = maxThreads;
    const batching = options.batching;
    this.#batchMaxTasks = batching === false ? 1 : Math.max(1, Math.floor(batching?.maxTasks ?? defaultBatchMaxTasks));
    this.#fast = batching === false ? undefined : new FastToolTracker(batching?.maxToolMs ?? defaultBatchMaxToolMs);
    this.#pool = new Piscina<WireTask | WireBatch, ToolOutcome | BatchOutcome>({
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
    const moduleUrl = tool.execution.moduleUrl;
    const task = encodeTask({
      moduleUrl,
      args: invocation.args,
      runId: invocation.runId,
      stepPath: invocation.stepPath,
      attempt: invocation.attempt,
      userContext: invocation.userContext,
      maxOutputBytes: invocation.maxOutputBytes,
    });
    if (this.#running < this.#threads) {
      this.#notifyWait(0);
      return this.#dispatch(task, cancellation, tool.name, moduleUrl);
    }
    if (this.#queue.size >= this.#maxQueue) {
      return Promise.resolve({ kind: 'error', error: stepError(ErrorCode.POOL_QUEUE_FULL, `tool ${tool.name}: the pool's queue is full (${this.#maxQueue} tasks waiting)`) });
    }
    return new Promise<InvocationOutcome>((resolve) => {
      this.#enqueue({ task, cancellation, toolName: tool.name, moduleUrl, queuedAt: performance.now(), resolve, batchable: true, waitReported: false, unsubscribe: noop, prev: undefined, next: undefined }, 'back');
    });
  }

  stats(): PoolStats {
    const pool = this.#pool;
    return {
      threads: pool.threads.length,
      inFlight: this.#runningTasks + this.#queue.size,
      waiting: this.#queue.size,
      completed: this.#completed,
      utilization: pool.utilization,
      batches: this.#batches,
      batchedTasks: this.#batchedTasks,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (let waiting = this.#queue.head; waiting !== undefined; waiting = this.#queue.head) {
      this.#queue.unlink(waiting);
      waiting.resolve({ kind: 'error', error: stepError(ErrorCode.POOL_CLOSED, `tool ${waiting.toolName}: the tool pool was closed before the step ran`) });
    }
    await this.#pool.destroy();
  }

  #enqueue(waiting: Waiting, end: 'front' | 'back'): void {
    if (end === 'back') this.#queue.push(waiting);
    else this.#queue.unshift(waiting);
    // Cancelled or timed out while waiting: it leaves the queue and never reaches a thread.
    waiting.unsubscribe = waiting.cancellation.onAbort(() => {
      this.#queue.unlink(waiting);
      waiting.resolve({ kind: 'error', error: cancellationError(waiting.cancellation) });
    });
  }

  #dispatch(task: WireTask, cancellation: Cancellation, toolName: string, moduleUrl: string): Promise<InvocationOutcome> {
    this.#running += 1;
    this.#runningTasks += 1;
    const sentAt = performance.now();
    return this.#pool.run(task, { signal: cancellation.eventTarget() }).then(
      (result): InvocationOutcome => {
        this.#fast?.roundTrip(moduleUrl, performance.now() - sentAt);
        this.#runningTasks -= 1;
        this.#completed += 1;
        this.#release();
        return toInvocationOutcome(result as ToolOutcome);
      },
      (err: unknown): InvocationOutcome => {
        if (!cancellation.aborted) this.#fast?.faulted(moduleUrl);
        this.#runningTasks -= 1;
        this.#release();
        return { kind: 'error', error: cancellation.aborted ? cancellationError(cancellation) : poolFailure(toolName, err) };
      },
    );
  }

  /** A Piscina task settled: its thread goes to the oldest waiting task (and, if they are fast, more). */
  #release(): void {
    this.#running -= 1;
    const head = this.#queue.head;
    if (head === undefined || this.#closed) return;
    const members = this.#takeBatch(head);
    if (members.length > 1 || (members.length === 1 && this.#fast !== undefined && this.#queue.size > 0)) {
      // A batch of one still reports the tool's time on the thread, which is how a tool earns batching
      // under a backlog (where round trips say little about the tool).
      this.#dispatchBatch(members);
      return;
    }
    const next = members[0]!;
    this.#reportWait(next);
    this.#dispatch(next.task, next.cancellation, next.toolName, next.moduleUrl).then(next.resolve);
  }

  /** The head, plus waiting tasks of fast tools up to the batch size; all taken out of the queue. */
  #takeBatch(head: Waiting): Waiting[] {
    const members = [head];
    const fast = this.#fast;
    if (fast !== undefined && head.batchable && fast.isFast(head.moduleUrl)) {
      // The backlog's share per thread, so other threads freeing up get work too.
      const size = Math.min(this.#batchMaxTasks, Math.ceil(this.#queue.size / this.#threads));
      // A bounded look past tasks that cannot join, so taking a batch stays O(batch size).
      let budget = 4 * size;
      for (let candidate = head.next; candidate !== undefined && members.length < size && budget > 0; candidate = candidate.next, budget--) {
        if (candidate.batchable && fast.isFast(candidate.moduleUrl)) members.push(candidate);
      }
    }
    for (const member of members) this.#queue.unlink(member);
    return members;
  }

  #dispatchBatch(members: readonly Waiting[]): void {
    this.#running += 1;
    this.#runningTasks += members.length;
    // A batch of one (sent that way to time a tool under a backlog) shares nothing: not counted.
    if (members.length > 1) {
      this.#batches += 1;
      this.#batchedTasks += members.length;
    }
    for (const member of members) this.#reportWait(member);
    const batch = new BatchInFlight(members);
    this.#pool.run(batch.wire, { signal: batch.kill.eventTarget() }).then(
      (result) => {
        const { outcomes, ms } = result as BatchOutcome;
        batch.done();
        members.forEach((member, index) => {
          const outcome = outcomes[index];
          if (outcome === null) return; // skipped: cancelled before its turn, and already answered
          this.#completed += 1;
          this.#fast?.ran(member.moduleUrl, ms[index]!);
          batch.answer(index, toInvocationOutcome(outcome));
        });
        this.#runningTasks -= members.length;
        this.#release();
      },
      (err: unknown) => {
        const culprit = batch.culprit();
        batch.done();
        if (culprit !== undefined) this.#fast?.faulted(members[culprit]!.moduleUrl);
        // Handed back in their order, ahead of everything that came after them.
        for (let index = members.length - 1; index >= 0; index--) {
          const member = members[index]!;
          if (index === culprit || this.#closed) batch.answer(index, { kind: 'error', error: poolFailure(member.toolName, err) });
          else if (!batch.answered(index)) this.#enqueue({ ...member, batchable: false, waitReported: true, unsubscribe: noop, prev: undefined, next: undefined }, 'front');
        }
        this.#runningTasks -= members.length;
        this.#release();
      },
    );
  }

  /** Reports a task's wait for a thread (once, however often it is handed back); a throwing listener is ignored. */
  #reportWait(waiting: Waiting): void {
    if (waiting.waitReported) return;
    waiting.waitReported = true;
    this.#notifyWait((performance.now() - waiting.queuedAt) / 1000);
  }

  #notifyWait(seconds: number): void {
    try {
      this.#onWait?.(seconds);
    } catch {
      // A metrics callback must not break dispatch.
    }
  }
}

function toInvocationOutcome(outcome: ToolOutcome): InvocationOutcome {
  if (typeof outcome === 'object') return { kind: 'error', error: outcome.error };
  return { kind: 'ok', output: decodeOutput(outcome), outputJson: outcome };
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
