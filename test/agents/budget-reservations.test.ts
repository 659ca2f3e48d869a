/**
 * Budget reservations around attempts that are cut off (src/agents/budget.ts, run-agent.ts): a timed-out
 * attempt's usage survives on its step_retrying event, and a request abandoned by its step drops its
 * hold on the budget even when its provider ignores the abort (an in-process provider here, since the
 * point is a provider that does not honour the signal; the OpenAI one does).
 */
import { describe, expect, it } from 'vitest';
import { Agent, AgentStep, Tool, WorkflowBuilder, WorkflowContext, WorkflowEngine, type ModelProvider, type ModelResponse, type RunEvent } from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';

const noop = new Tool({ name: 'noop', parameters: { type: 'object' }, execute: () => ({ ok: true }) });
const ctx = () => new WorkflowContext({ workflowId: 'reservations' });
const done: ModelResponse = { message: { content: 'done' }, usage: { promptTokens: 1, completionTokens: 1 } };

/** Answers from `script` in order; a function entry gets the request. */
function provider(script: ((signal: AbortSignal | undefined) => Promise<ModelResponse>)[]): ModelProvider & { readonly calls: number } {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    getCompletion(request) {
      const next = script[calls] ?? (() => Promise.resolve(done));
      calls += 1;
      return next(request.signal);
    },
  };
}

describe('budget reservations and cut-off attempts', () => {
  it("a timed-out attempt's tokens go on its step_retrying event", async () => {
    const models = provider([
      async () => ({ message: { content: null, toolCalls: [{ id: 'c1', name: 'noop', arguments: '{}' }] }, usage: { promptTokens: 100, completionTokens: 20 } }),
      // The second model call of attempt 1 outlives the step's timeout.
      (signal) => new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(new Error('aborted')))),
    ]);
    const agent = new Agent({ name: 'caller', instructions: 'Call noop, then answer.', tools: [noop], maxTurns: 5 });
    const engine = new WorkflowEngine({ agents: [agent], modelProvider: models, logger: quietLogger() });
    const events: RunEvent[] = [];
    const step = new AgentStep('ask', 'caller', 'go').withTimeout(0.3).withRetry({ maxAttempts: 2, initialDelaySeconds: 0.001, maxDelaySeconds: 0.002 });
    const result = await engine.executeWorkflow(new WorkflowBuilder('timed-out').addStep(step).build(), ctx(), { onEvent: (e) => events.push(e), tokenBudget: 100_000 });
    await engine.close();
    expect(result.status).toBe('completed');
    expect(events.filter((e) => e.type === 'step_retrying')).toMatchObject([{ attempt: 1, error: { code: 'TIMEOUT' }, usage: { promptTokens: 100, completionTokens: 20 } }]);
  });

  it('a request whose step timed out drops its hold on the budget even if its provider never answers', async () => {
    // About 620 tokens per request (maxTokens 600): two do not fit 1,000 at once.
    const models = provider([() => new Promise<ModelResponse>(() => {})]);
    const agent = new Agent({ name: 'brief', instructions: 'One word.', maxTokens: 600 });
    const engine = new WorkflowEngine({ agents: [agent], modelProvider: models, logger: quietLogger() });
    const step = new AgentStep('ask', 'brief', 'go').withTimeout(0.3).withRetry({ maxAttempts: 2, initialDelaySeconds: 0.001, maxDelaySeconds: 0.002 });
    const result = await engine.executeWorkflow(new WorkflowBuilder('abandoned').addStep(step).build(), ctx(), { tokenBudget: 1000 });
    await engine.close();
    // The retry's request was sent (without the release it waited for the lost one, and timed out too).
    expect(models.calls).toBe(2);
    expect(result.status).toBe('completed');
    expect(result.steps[0]!.attempts).toBe(2);
  });
});
