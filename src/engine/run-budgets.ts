/**
 * A run's token budgets: the run's own and each agent step's (over all its attempts), shared by every
 * model request that must fit them. A recovered run starts from what its history says it used.
 */
import { BudgetGate, TokenBudget } from '../agents/budget.ts';
import type { AttemptUsage, RunEvent } from './events.ts';

export class RunBudgets {
  readonly #run: TokenBudget | undefined;
  /** Each agent step's tokens, by path (only for steps with a budget). */
  readonly #steps = new Map<string, TokenBudget>();
  readonly #history: readonly RunEvent[] | undefined;

  constructor(runLimit: number | undefined, history: readonly RunEvent[] | undefined) {
    this.#history = history;
    this.#run = runLimit === undefined ? undefined : new TokenBudget('run', runLimit, tokensIn(history));
  }

  get runLimit(): number | undefined {
    return this.#run?.limit;
  }

  /** The budgets a request of the step at `path` must fit: its own (if it has a limit) and the run's. */
  gateFor(path: string, stepLimit: number | undefined): BudgetGate {
    let step: TokenBudget | undefined;
    if (stepLimit !== undefined) {
      step = this.#steps.get(path);
      if (step === undefined) {
        step = new TokenBudget('step', stepLimit, tokensIn(this.#history, path));
        this.#steps.set(path, step);
      }
    }
    return new BudgetGate([step, this.#run]);
  }
}

/**
 * Model tokens a recovered run (or one of its steps) already used, from its history: the recorded model
 * responses when it recorded them, else what its agent attempts reported: the failed ones on their
 * step_retrying events, the last one on the step's result. (A model call in flight at the crash is lost.)
 */
function tokensIn(history: readonly RunEvent[] | undefined, path?: string): number {
  if (history === undefined) return 0;
  let recorded = 0;
  let sawRecording = false;
  let fromResults = 0;
  for (const event of history) {
    if (path !== undefined && 'path' in event && event.path !== path) continue;
    if (event.type === 'model_responded') {
      sawRecording = true;
      recorded += (event.response.usage?.promptTokens ?? 0) + (event.response.usage?.completionTokens ?? 0);
    } else if (event.type === 'step_retrying') {
      fromResults += tokens(event.usage);
    } else if ('result' in event && event.result.kind === 'agent') {
      fromResults += tokens(attemptUsage(event.result.metadata));
    }
  }
  return sawRecording ? recorded : fromResults;
}

/** An agent attempt's token use, from its result metadata (`metadata.usage`), if it reported any. */
export function attemptUsage(metadata: Readonly<Record<string, unknown>> | undefined): AttemptUsage | undefined {
  const usage = metadata?.usage as { promptTokens?: unknown; completionTokens?: unknown } | undefined;
  if (typeof usage?.promptTokens !== 'number' || typeof usage.completionTokens !== 'number') return undefined;
  return { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens };
}

function tokens(usage: AttemptUsage | undefined): number {
  return usage === undefined ? 0 : usage.promptTokens + usage.completionTokens;
}
