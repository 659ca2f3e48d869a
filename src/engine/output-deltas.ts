/**
 * An agent step's streamed text, coalesced into at most one `step_output_delta` event per event-loop
 * turn (and per model call): a model streams a few characters at a time, and an event per chunk would
 * cost a store row each. Closed when the attempt ends, so that text still arriving from an aborted
 * request can never follow the step's result.
 */
export type EmitDelta = (agent: string, turn: number, text: string) => void;

export class OutputDeltas {
  readonly #emit: EmitDelta;
  #pending: { agent: string; turn: number; text: string } | undefined;
  #scheduled: NodeJS.Immediate | undefined;
  #closed = false;

  constructor(emit: EmitDelta) {
    this.#emit = emit;
  }

  push(agent: string, text: string, turn: number): void {
    if (this.#closed || text === '') return;
    const pending = this.#pending;
    if (pending !== undefined && (pending.agent !== agent || pending.turn !== turn)) this.flush();
    if (this.#pending === undefined) this.#pending = { agent, turn, text };
    else this.#pending.text += text;
    this.#scheduled ??= setImmediate(() => {
      this.#scheduled = undefined;
      this.flush();
    });
  }

  /** Emits what is pending now (before a model response is recorded, or the step finishes). */
  flush(): void {
    if (this.#scheduled !== undefined) {
      clearImmediate(this.#scheduled);
      this.#scheduled = undefined;
    }
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined && !this.#closed) this.#emit(pending.agent, pending.turn, pending.text);
  }

  /** Flushes, then ignores anything later. */
  close(): void {
    this.flush();
    this.#closed = true;
  }
}
