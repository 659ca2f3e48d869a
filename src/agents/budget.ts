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

export interface TokenBudget {
  readonly scope: 'step' | 'run';
  readonly limit: number;
  /** Tokens charged so far (shared by everything the budget covers). */
  used: number;
}

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

  /** The error to fail the step with if a request estimated at `estimate` tokens does not fit; else undefined. */
  admit(estimate: number, agentName: string): StepError | undefined {
    for (const budget of this.#budgets) {
      const remaining = budget.limit - budget.used;
      if (estimate > remaining) {
        return stepError(
          ErrorCode.BUDGET_EXCEEDED,
          `agent ${agentName}: the next model request (about ${estimate} tokens) does not fit the ${budget.scope}'s token budget (${Math.max(0, remaining)} of ${budget.limit} left); it was not sent`,
          { scope: budget.scope, limit: budget.limit, used: budget.used, estimate },
        );
      }
    }
    return undefined;
  }

  charge(tokens: number): void {
    if (!(tokens > 0)) return;
    for (const budget of this.#budgets) budget.used += tokens;
  }
}
