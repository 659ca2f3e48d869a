/**
 * Token budgets: how many model tokens (prompt + completion) a step, over all its attempts, and a whole
 * run may use. Before each model request the agent loop asks the gate to admit the request's estimated
 * cost; a request that would go over what remains of any budget is not sent, and the step fails with
 * BUDGET_EXCEEDED. After each response the tokens the provider reports are charged.
 *
 * The estimate is deliberately simple and provider-independent: a quarter of the request's characters
 * (messages and tool schemas, as JSON) for the prompt, plus the agent's `maxTokens` for the answer.
 */
import { ErrorCode, stepError, type StepError } from '../errors.ts';
import type { ChatMessage, ToolSchema } from './model-provider.ts';

/**
 * One budget (a step's, or the run's), shared by every request that must fit it. Requests in flight
 * hold a reservation of their estimate, so concurrent requests (parallel agent steps) cannot together
 * spend more than the budget: one that fits only once others have settled waits for them, in arrival
 * order (a large request is not passed over forever by small ones).
 */
export class TokenBudget {
  readonly scope: 'step' | 'run';
  readonly limit: number;
  /** Tokens charged so far. */
  used: number;
  /** Estimates of the requests in flight. */
  reserved = 0;
  /** Requests waiting to be admitted, oldest first. */
  readonly #queue: object[] = [];
  #wakers: (() => void)[] = [];

  constructor(scope: 'step' | 'run', limit: number, used = 0) {
    this.scope = scope;
    this.limit = limit;
    this.used = used;
  }

  /** Whether a request (`ticket`, or a newcomer without one) must let an older waiting one go first. */
  behindOthers(ticket: object | undefined): boolean {
    return this.#queue.length > 0 && this.#queue[0] !== ticket;
  }

  join(ticket: object): void {
    if (!this.#queue.includes(ticket)) this.#queue.push(ticket);
  }

  leave(ticket: object): void {
    const index = this.#queue.indexOf(ticket);
    if (index === -1) return;
    this.#queue.splice(index, 1);
    this.wake();
  }

  /** Wakes the waiting requests to check again (a reservation settled, or the queue moved). */
  wake(): void {
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const wake of wakers) wake();
  }

  /** Resolves at the next wake-up (or at once if `signal` is aborted). */
  nextWake(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.#wakers = this.#wakers.filter((w) => w !== wake);
        resolve();
      };
      this.#wakers.push(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** An admitted request's hold on its budgets, until it settles with the tokens it really used. */
export interface BudgetReservation {
  /** Charges what the request used and drops its hold (once; later calls only charge). */
  settle(tokensUsed: number): void;
  /** Drops the hold without charging (the request was abandoned); a late settle still charges. */
  release(): void;
}

export type Admission = { readonly ok: true; readonly reservation: BudgetReservation } | { readonly ok: false; readonly error: StepError };

/** Characters per token of the prompt estimate (English text averages about four). */
export const CHARS_PER_TOKEN = 4;

export function estimateRequestTokens(messages: readonly ChatMessage[], tools: readonly ToolSchema[], maxTokens: number | undefined): number {
  let chars = 0;
  for (const message of messages) chars += JSON.stringify(message).length;
  for (const tool of tools) chars += JSON.stringify(tool).length;
  return Math.ceil(chars / CHARS_PER_TOKEN) + (maxTokens ?? 0);
}

/** The budgets one model request must fit in (the step's, the run's). */
export class BudgetGate {
  readonly #budgets: readonly TokenBudget[];

  constructor(budgets: readonly (TokenBudget | undefined)[]) {
    this.#budgets = budgets.filter((b): b is TokenBudget => b !== undefined);
  }

  get empty(): boolean {
    return this.#budgets.length === 0;
  }

  /**
   * Admits a request estimated at `estimate` tokens: reserved on every budget, to be settled with what
   * it used. A request that does not fit what is left even if every request in flight used nothing is
   * refused (BUDGET_EXCEEDED, never sent); one that fits only once those settle waits for them.
   */
  async admit(estimate: number, agentName: string, signal?: AbortSignal): Promise<Admission> {
    const budgets = this.#budgets;
    let ticket: object | undefined;
    try {
      for (;;) {
        const over = budgets.find((budget) => estimate > budget.limit - budget.used);
        if (over !== undefined) {
          const remaining = over.limit - over.used;
          return {
            ok: false,
            error: stepError(
              ErrorCode.BUDGET_EXCEEDED,
              `agent ${agentName}: the next model request (about ${estimate} tokens) does not fit the ${over.scope}'s token budget (${Math.max(0, remaining)} of ${over.limit} left); it was not sent`,
              { scope: over.scope, limit: over.limit, used: over.used, estimate },
            ),
          };
        }
        const blocked = budgets.find((budget) => estimate > budget.limit - budget.used - budget.reserved || budget.behindOthers(ticket));
        if (blocked === undefined || signal?.aborted) break;
        const waiting = (ticket ??= {});
        for (const budget of budgets) budget.join(waiting);
        await blocked.nextWake(signal);
      }
    } finally {
      if (ticket !== undefined) for (const budget of budgets) budget.leave(ticket);
    }
    for (const budget of budgets) budget.reserved += estimate;
    let held = true;
    const drop = () => {
      if (!held) return;
      held = false;
      for (const budget of budgets) {
        budget.reserved -= estimate;
        budget.wake();
      }
    };
    let charged = false;
    return {
      ok: true,
      reservation: {
        settle(tokensUsed: number): void {
          if (charged) return;
          charged = true;
          if (tokensUsed > 0) for (const budget of budgets) budget.used += tokensUsed;
          drop();
        },
        release: drop,
      },
    };
  }
}
