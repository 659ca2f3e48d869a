/**
 * Step timeouts without a Node timer per attempt. Every attempt of every tool and agent step has a
 * deadline (300 s by default), and nearly all are cancelled long before they fire: a Node Timeout per
 * attempt (async-id bookkeeping, libuv clock reads) was a tenth of a no-op step's cost. Deadlines of one
 * length arrive in time order, so each length keeps a doubly linked list (O(1) add and cancel) served
 * by a single Node timer armed for its head. The timer keeps the process alive only while its lane has
 * pending deadlines, as the per-attempt timers did.
 */
export interface Deadline {
  /** Stops the deadline from firing; safe to call more than once. */
  cancel(): void;
}

interface Entry extends Deadline {
  at: number;
  fire: (() => void) | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

class Lane {
  head: Entry | undefined;
  tail: Entry | undefined;
  timer: NodeJS.Timeout | undefined;
}

export class Deadlines {
  readonly #lanes = new Map<number, Lane>();

  /** Calls `fire` after `ms` unless cancelled first. */
  schedule(ms: number, fire: () => void): Deadline {
    let lane = this.#lanes.get(ms);
    if (lane === undefined) {
      lane = new Lane();
      this.#lanes.set(ms, lane);
    }
    const owner = lane;
    const entry: Entry = {
      at: performance.now() + ms,
      fire,
      prev: owner.tail,
      next: undefined,
      cancel: () => unlink(owner, entry),
    };
    if (owner.tail === undefined) {
      owner.head = entry;
      owner.timer?.ref();
    } else {
      owner.tail.next = entry;
    }
    owner.tail = entry;
    // An armed timer is due no later than this entry (entries of a lane come in deadline order).
    if (owner.timer === undefined) this.#arm(owner, ms);
    return entry;
  }

  #arm(lane: Lane, delay: number): void {
    lane.timer = setTimeout(() => this.#expire(lane), Math.max(1, Math.ceil(delay)));
  }

  #expire(lane: Lane): void {
    lane.timer = undefined;
    const now = performance.now();
    while (lane.head !== undefined && lane.head.at <= now) {
      const entry = lane.head;
      const fire = entry.fire;
      unlink(lane, entry);
      fire?.();
    }
    // The head moved on (or was cancelled): wait for the next one, if any.
    if (lane.head !== undefined) this.#arm(lane, lane.head.at - now);
  }
}

function unlink(lane: Lane, entry: Entry): void {
  if (entry.fire === undefined) return;
  entry.fire = undefined;
  if (entry.prev === undefined) lane.head = entry.next;
  else entry.prev.next = entry.next;
  if (entry.next === undefined) lane.tail = entry.prev;
  else entry.next.prev = entry.prev;
  entry.prev = undefined;
  entry.next = undefined;
  // Nothing pending: the armed timer may stay (re-arming costs more) but must not hold the process open.
  if (lane.head === undefined) lane.timer?.unref();
}
