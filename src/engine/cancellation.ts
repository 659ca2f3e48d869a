/**
 * Cancellation inside the engine. Every attempt of every step needs one, linked to its parent's, so it
 * must be cheap: Node's AbortController is an EventTarget and costs microseconds to create. This is a
 * plain listener list; a real AbortSignal is made only when something outside asks for one (a tool
 * reading `ctx.signal`, a Piscina task, a model request).
 */
import { ErrorCode, stepError, type StepError } from '../errors.ts';

export class Cancellation {
  #reason: StepError | undefined;
  #listeners: (() => void)[] | undefined;
  #controller: AbortController | undefined;

  get aborted(): boolean {
    return this.#reason !== undefined;
  }

  /** Why it was aborted (TIMEOUT, CANCELLED...), once aborted. */
  get reason(): StepError | undefined {
    return this.#reason;
  }

  /** A standard AbortSignal mirroring this cancellation, made on first use; its reason is the StepError. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /**
   * The minimal signal Piscina accepts (`aborted`, `reason`, add/removeEventListener), made of this
   * cancellation's listener list: a real AbortSignal per pool task cost about 9 µs of main-thread time.
   */
  eventTarget(): CancellationEventTarget {
    return new CancellationEventTarget(this);
  }

  abort(reason: StepError): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener();
  }

  /** Calls `listener` once on abort (at once if already aborted); returns an unsubscribe function. */
  onAbort(listener: () => void): () => void {
    if (this.#reason !== undefined) {
      listener();
      return noop;
    }
    (this.#listeners ??= []).push(listener);
    return () => {
      const listeners = this.#listeners;
      if (listeners === undefined) return;
      const index = listeners.indexOf(listener);
      if (index !== -1) listeners.splice(index, 1);
    };
  }

  /**
   * A cancellation that also aborts when this one does, as CANCELLED: only the step whose own timer
   * fired reports TIMEOUT; its children report that they were cancelled because of it.
   */
  child(): LinkedCancellation {
    const child = new LinkedCancellation();
    child.unlink = this.onAbort(() => {
      const reason = this.#reason!;
      child.abort(reason.code === ErrorCode.CANCELLED ? reason : stepError(ErrorCode.CANCELLED, `cancelled: ${reason.message}`));
    });
    return child;
  }

  /** A cancellation driven by a caller's AbortSignal. */
  static fromSignal(signal: AbortSignal | undefined, reason: () => StepError): LinkedCancellation {
    const cancellation = new LinkedCancellation();
    if (signal === undefined) return cancellation;
    const onAbort = () => cancellation.abort(reason());
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      cancellation.unlink = () => signal.removeEventListener('abort', onAbort);
    }
    return cancellation;
  }
}

export class CancellationEventTarget {
  readonly #cancellation: Cancellation;
  #listener: (() => void) | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(cancellation: Cancellation) {
    this.#cancellation = cancellation;
  }

  get aborted(): boolean {
    return this.#cancellation.aborted;
  }

  get reason(): StepError | undefined {
    return this.#cancellation.reason;
  }

  // Piscina adds exactly one listener per task; a second one replaces it.
  addEventListener(_type: 'abort', listener: () => void): void {
    this.#unsubscribe?.();
    this.#listener = listener;
    this.#unsubscribe = this.#cancellation.onAbort(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (listener !== this.#listener) return;
    this.#unsubscribe?.();
    this.#listener = undefined;
    this.#unsubscribe = undefined;
  }
}

export class LinkedCancellation extends Cancellation {
  /** Stops following the parent; call when the child's work is over. */
  unlink: () => void = noop;
}

function noop(): void {}

/** The error a step reports once its cancellation fired. */
export function cancellationError(cancellation: Cancellation): StepError {
  return cancellation.reason ?? stepError(ErrorCode.CANCELLED, 'step cancelled');
}

/** Settles with `work`, or with `onAbort()` as soon as the cancellation fires, whichever comes first. */
export function raceCancellation<T, U>(work: PromiseLike<T>, cancellation: Cancellation, onAbort: () => U): Promise<T | U> {
  if (cancellation.aborted) {
    work.then(undefined, () => {});
    return Promise.resolve(onAbort());
  }
  return new Promise<T | U>((resolve, reject) => {
    const unsubscribe = cancellation.onAbort(() => resolve(onAbort()));
    work.then(
      (value) => {
        unsubscribe();
        resolve(value);
      },
      (err: unknown) => {
        unsubscribe();
        reject(err);
      },
    );
  });
}
