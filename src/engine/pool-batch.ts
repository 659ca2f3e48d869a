/**
 * One batch on its way through a thread, seen from the engine: the shared `control` slots it claims
 * tasks in (see TaskSlot), each task's answer, and what a cancellation does. A task cancelled before
 * its turn is claimed as skipped and answered at once; one cancelled during its turn can only be
 * stopped by killing the thread, and is remembered as the kill's reason, so that no other task takes
 * the blame for it.
 */
import { Cancellation, cancellationError } from './cancellation.ts';
import type { InvocationOutcome } from './executor.ts';
import type { Waiting } from './pool-queue.ts';
import { TaskSlot, type WireBatch } from './worker-protocol.ts';

export class BatchInFlight {
  readonly wire: WireBatch;
  /** Aborted only to stop a task running on the thread, which kills the thread. */
  readonly kill = new Cancellation();
  readonly #members: readonly Waiting[];
  readonly #control: Int32Array;
  readonly #answered: boolean[];
  readonly #unsubscribes: (() => void)[];
  #killedFor: number | undefined;

  constructor(members: readonly Waiting[]) {
    this.#members = members;
    this.#control = new Int32Array(new SharedArrayBuffer(members.length * Int32Array.BYTES_PER_ELEMENT));
    this.#answered = new Array<boolean>(members.length).fill(false);
    this.wire = { tasks: members.map((member) => member.task), control: this.#control };
    this.#unsubscribes = members.map((member, index) => member.cancellation.onAbort(() => this.#cancelled(index)));
  }

  answered(index: number): boolean {
    return this.#answered[index]!;
  }

  /** Answers a task once; later answers (a result after its cancellation) are dropped. */
  answer(index: number, outcome: InvocationOutcome): void {
    if (this.#answered[index]) return;
    this.#answered[index] = true;
    this.#members[index]!.resolve(outcome);
  }

  /**
   * After a thread fault: the task it belongs to. The one cancelled during its turn if that is why the
   * thread was killed (whatever the thread had moved on to since), else the one the thread had started.
   */
  culprit(): number | undefined {
    if (this.#killedFor !== undefined) return this.#killedFor;
    for (let index = 0; index < this.#members.length; index++) {
      if (Atomics.load(this.#control, index) === TaskSlot.started) return index;
    }
    return undefined;
  }

  /** The batch settled: its tasks' cancellations no longer concern it. */
  done(): void {
    for (const unsubscribe of this.#unsubscribes) unsubscribe();
  }

  #cancelled(index: number): void {
    const member = this.#members[index]!;
    // Exactly one of the thread (pending -> started) and this (pending -> skipped) claims a pending task.
    const was = Atomics.compareExchange(this.#control, index, TaskSlot.pending, TaskSlot.skipped);
    this.answer(index, { kind: 'error', error: cancellationError(member.cancellation) });
    if (was === TaskSlot.started && this.#killedFor === undefined) {
      this.#killedFor = index;
      this.kill.abort(cancellationError(member.cancellation));
    }
  }
}
