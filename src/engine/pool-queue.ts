/**
 * The pool's wait queue: a doubly linked list, so a task cancelled while it waits leaves in O(1), and a
 * task handed back from a failed batch goes in at the front, ahead of tasks that came after it.
 */
import type { Cancellation } from './cancellation.ts';
import type { InvocationOutcome } from './executor.ts';
import type { WireTask } from './worker-protocol.ts';

export interface Waiting {
  readonly task: WireTask;
  readonly cancellation: Cancellation;
  readonly toolName: string;
  readonly moduleUrl: string;
  readonly queuedAt: number;
  readonly resolve: (outcome: InvocationOutcome) => void;
  /** False for a task handed back from a failed batch: it runs alone next time. */
  readonly batchable: boolean;
  /** Its wait was reported (metrics count each task's wait once). */
  waitReported: boolean;
  unsubscribe: () => void;
  prev: Waiting | undefined;
  next: Waiting | undefined;
}

export class WaitQueue {
  #head: Waiting | undefined;
  #tail: Waiting | undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get head(): Waiting | undefined {
    return this.#head;
  }

  push(waiting: Waiting): void {
    waiting.prev = this.#tail;
    waiting.next = undefined;
    if (this.#tail === undefined) this.#head = waiting;
    else this.#tail.next = waiting;
    this.#tail = waiting;
    this.#size += 1;
  }

  unshift(waiting: Waiting): void {
    waiting.prev = undefined;
    waiting.next = this.#head;
    if (this.#head === undefined) this.#tail = waiting;
    else this.#head.prev = waiting;
    this.#head = waiting;
    this.#size += 1;
  }

  /** Takes `waiting` out of the queue and drops its cancellation listener. */
  unlink(waiting: Waiting): void {
    waiting.unsubscribe();
    waiting.unsubscribe = noop;
    if (waiting.prev === undefined) this.#head = waiting.next;
    else waiting.prev.next = waiting.next;
    if (waiting.next === undefined) this.#tail = waiting.prev;
    else waiting.next.prev = waiting.prev;
    waiting.prev = undefined;
    waiting.next = undefined;
    this.#size -= 1;
  }
}

export function noop(): void {}
