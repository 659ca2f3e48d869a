/**
 * Where a run's events go, in order: the store, then the run's listeners. A listener sees an event
 * only once it is durable, so nothing is acknowledged (to a stream, to the next step) that a crash
 * could take back.
 */
import type { RunStore } from '../store/run-store.ts';
import type { RunEvent } from './events.ts';

export interface RunJournal {
  /** True when events are never stored: the run need not wait for anything. */
  readonly immediate: boolean;
  /** Takes the next event (called in seq order). */
  record(event: RunEvent): void;
  /** Resolves when every event recorded so far is durable; rejects if one could not be stored. */
  durable(): Promise<void>;
}

type Listener = (event: RunEvent) => void;
type ListenerFailure = (err: unknown) => void;

const settled = Promise.resolve();

/** No store: listeners hear each event at once. */
export class ImmediateJournal implements RunJournal {
  readonly immediate = true;
  constructor(
    private readonly listener: Listener | undefined,
    private readonly onListenerError: ListenerFailure,
  ) {}

  record(event: RunEvent): void {
    if (this.listener === undefined) return;
    try {
      this.listener(event);
    } catch (err) {
      this.onListenerError(err);
    }
  }

  durable(): Promise<void> {
    return settled;
  }
}

/** Events appended to a store (group-committed there); listeners hear each one after its commit. */
export class StoreJournal implements RunJournal {
  readonly immediate = false;
  #last: Promise<void> = settled;

  constructor(
    private readonly store: RunStore,
    private readonly listener: Listener | undefined,
    private readonly onListenerError: ListenerFailure,
    /** True while this run is the engine's only one and nobody watches it (see RunStore.commitSoon). */
    private readonly alone: () => boolean = () => false,
  ) {}

  record(event: RunEvent): void {
    const stored = this.store.append([event]);
    // The store commits a run's appends in order, so the last one settling means all have.
    this.#last = stored;
    if (this.listener === undefined) {
      stored.catch(() => {}); // durable() reports the failure; this keeps it from also being "unhandled"
      return;
    }
    stored.then(
      () => {
        if (this.listener === undefined) return;
        try {
          this.listener(event);
        } catch (err) {
          this.onListenerError(err);
        }
      },
      () => {},
    );
  }

  durable(): Promise<void> {
    if (this.alone()) this.store.commitSoon?.();
    return this.#last;
  }
}
