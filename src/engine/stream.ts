import type { StepResult, WorkflowResult } from './results.ts';

/** Text an agent step's model streamed, as `executeWorkflowStream(..., { partialOutput: true })` yields it. */
export interface PartialOutput {
  readonly kind: 'partial_output';
  readonly stepPath: string;
  readonly attempt: number;
  readonly agent: string;
  readonly text: string;
}

type Start<T> = (push: (item: T) => void, signal: AbortSignal) => Promise<WorkflowResult>;

/**
 * A running workflow seen as an async iterator of its top-level StepResults, in completion order (the
 * same list `WorkflowResult.steps` holds). The run starts at once and buffers results until read;
 * leaving the loop early (`break`) cancels the run. `result` resolves with the WorkflowResult. It can be
 * iterated once.
 */
export class WorkflowStream<T = StepResult> implements AsyncIterable<T> {
  readonly result: Promise<WorkflowResult>;
  readonly #buffer: T[] = [];
  readonly #abort = new AbortController();
  #waiting: (() => void) | undefined;
  #ended = false;
  #iterated = false;
  #failure: { error: unknown } | undefined;

  constructor(start: Start<T>) {
    const push = (result: T) => {
      this.#buffer.push(result);
      this.#wake();
    };
    let started: Promise<WorkflowResult>;
    try {
      started = start(push, this.#abort.signal);
    } catch (err) {
      started = Promise.reject(err);
    }
    this.result = started.then(
      (result) => {
        this.#ended = true;
        this.#wake();
        return result;
      },
      (error: unknown) => {
        this.#ended = true;
        this.#failure = { error };
        this.#wake();
        throw error;
      },
    );
    // Readers of only the iterator still see the failure; this keeps it from also being "unhandled".
    this.result.catch(() => {});
  }

  /** Cancels the run (running tools are aborted; the run ends `cancelled`). */
  cancel(): void {
    this.#abort.abort();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    // Results are handed out once: a second reader would silently miss the first one's.
    if (this.#iterated) throw new TypeError('a WorkflowStream can be iterated once');
    this.#iterated = true;
    let finished = false;
    try {
      for (;;) {
        const next = this.#buffer.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (this.#ended) {
          if (this.#failure !== undefined) throw this.#failure.error;
          finished = true;
          return;
        }
        await new Promise<void>((resolve) => {
          this.#waiting = resolve;
        });
      }
    } finally {
      if (!finished && !this.#ended) this.cancel();
    }
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.();
  }
}
