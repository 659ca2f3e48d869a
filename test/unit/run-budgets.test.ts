/**
 * A recovered run's budgets start from what its history says it used (src/engine/run-budgets.ts).
 */
import { describe, expect, it } from 'vitest';
import type { RunEvent, StepResultData } from 'jaf-workflows';
import { RunBudgets } from '../../src/engine/run-budgets.ts';

const runId = 'r';
const started: RunEvent = {
  type: 'run_started',
  seq: 1,
  runId,
  at: 1,
  workflowId: 'wf',
  workflowName: 'wf',
  definitionHash: 'h',
  totalSteps: 2,
  input: { workflowId: 'c', userContext: null, initialData: {}, variables: {}, metadata: {} },
};
const agentResult = (path: string, promptTokens: number, completionTokens: number): StepResultData => ({
  stepId: path,
  path,
  kind: 'agent',
  status: 'completed',
  output: 'ok',
  executionTimeMs: 1,
  attempts: 2,
  metadata: { usage: { promptTokens, completionTokens, turns: 1, toolCalls: 0 }, agent: 'a' },
});

/** The `used` a budget reports when it refuses a request far too big for it. */
async function usedBy(budgets: RunBudgets, path: string, stepLimit?: number): Promise<unknown[]> {
  const admitted = await budgets.gateFor(path, stepLimit).admit(10_000_000, 'a');
  expect(admitted.ok).toBe(false);
  return admitted.ok ? [] : [admitted.error.details?.scope, admitted.error.details?.used];
}

describe('RunBudgets from a history', () => {
  it('counts the failed attempts of agent steps (on step_retrying) as well as their results', async () => {
    const history: RunEvent[] = [
      started,
      { type: 'step_started', seq: 2, runId, at: 2, path: 'a', parent: undefined, stepId: 'a', kind: 'agent', attempt: 1 },
      {
        type: 'step_retrying',
        seq: 3,
        runId,
        at: 3,
        path: 'a',
        attempt: 1,
        error: { code: 'AGENT_OUTPUT_INVALID', message: 'not JSON', retryable: true },
        delayMs: 0,
        reason: 'retry_policy',
        usage: { promptTokens: 100, completionTokens: 20 },
      },
      { type: 'step_started', seq: 4, runId, at: 4, path: 'a', parent: undefined, stepId: 'a', kind: 'agent', attempt: 2 },
      { type: 'step_completed', seq: 5, runId, at: 5, path: 'a', parent: undefined, result: agentResult('a', 50, 10) },
      { type: 'step_started', seq: 6, runId, at: 6, path: 'b', parent: undefined, stepId: 'b', kind: 'agent', attempt: 1 },
      {
        type: 'step_retrying',
        seq: 7,
        runId,
        at: 7,
        path: 'b',
        attempt: 1,
        error: { code: 'MODEL_RATE_LIMITED', message: '429', retryable: true },
        delayMs: 0,
        reason: 'retry_policy',
      },
    ];
    const budgets = new RunBudgets(1_000_000, history);
    expect(await usedBy(budgets, 'a', 1_000_000)).toEqual(['step', 180]);
    expect(await usedBy(budgets, 'b', 1_000_000)).toEqual(['step', 0]);
    expect(await usedBy(budgets, 'b')).toEqual(['run', 180]);
  });
});
