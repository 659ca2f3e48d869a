import { describe, expect, it } from 'vitest';
import type { RunEvent, StepResultData } from 'jaf-workflows';
import type { NewRunEvent } from '../../src/engine/events.ts';
import { InvariantViolation, nextStepRecord, RunProjection } from '../../src/engine/run-projection.ts';

const base = { runId: 'r', at: 0 };
const done = (path: string, status: StepResultData['status'] = 'completed', attempts = 1): StepResultData => ({
  stepId: path.split('/').pop()!,
  path,
  kind: 'tool',
  status,
  executionTimeMs: 1,
  attempts,
});

function fold(events: NewRunEvent[]): RunProjection {
  const projection = new RunProjection('r');
  events.forEach((e, i) => projection.apply({ ...e, ...base, seq: i + 1 } as RunEvent));
  return projection;
}

const started = {
  type: 'run_started',
  workflowId: 'w',
  workflowName: 'w',
  definitionHash: 'h',
  totalSteps: 2,
  input: { workflowId: 'c', userContext: undefined, initialData: {}, variables: {}, metadata: {} },
} as const;

describe('RunProjection', () => {
  it('folds a run into top-level results with nested children in start order', () => {
    const p = fold([
      started,
      { type: 'step_started', path: 'par', parent: undefined, stepId: 'par', kind: 'parallel', attempt: 1 },
      { type: 'step_started', path: 'par/a', parent: 'par', stepId: 'a', kind: 'tool', attempt: 1 },
      { type: 'step_started', path: 'par/b', parent: 'par', stepId: 'b', kind: 'tool', attempt: 1 },
      { type: 'step_completed', path: 'par/b', parent: 'par', result: done('par/b') },
      { type: 'step_completed', path: 'par/a', parent: 'par', result: done('par/a') },
      { type: 'step_completed', path: 'par', parent: undefined, result: { ...done('par'), kind: 'parallel' } },
      { type: 'step_skipped', path: 'next', parent: undefined, result: done('next', 'skipped', 0) },
      { type: 'run_completed' },
    ]);
    expect(p.status).toBe('completed');
    const results = p.topLevelResults();
    expect(results.map((r) => r.path)).toEqual(['par', 'next']);
    expect(results[0]!.children.map((c) => c.path)).toEqual(['par/a', 'par/b']);
    expect(results[1]!.isSkipped).toBe(true);
  });

  it('rejects a gap in seq', () => {
    const p = new RunProjection('r');
    p.apply({ ...started, ...base, seq: 1 });
    expect(() => p.apply({ type: 'run_completed', ...base, seq: 3 })).toThrow(/no gaps/);
  });

  it('never lets a completed step start again', () => {
    const completed = nextStepRecord(undefined, { type: 'step_completed', path: 'a', parent: undefined, result: done('a'), ...base, seq: 2 });
    expect(() => nextStepRecord(completed, { type: 'step_started', path: 'a', parent: undefined, stepId: 'a', kind: 'tool', attempt: 2, ...base, seq: 3 })).toThrow(InvariantViolation);
  });

  it('lets a failed step run again with the next attempt number only', () => {
    const failed = nextStepRecord(undefined, { type: 'step_failed', path: 'a', parent: 'p', result: done('a', 'failed', 2), ...base, seq: 2 });
    const again = nextStepRecord(failed, { type: 'step_started', path: 'a', parent: 'p', stepId: 'a', kind: 'tool', attempt: 3, ...base, seq: 3 });
    expect(again.status).toBe('running');
    expect(() => nextStepRecord(failed, { type: 'step_started', path: 'a', parent: 'p', stepId: 'a', kind: 'tool', attempt: 1, ...base, seq: 3 })).toThrow(/attempt 1 follows attempt 2/);
  });

  it('rejects events after the run finished', () => {
    const p = fold([started, { type: 'run_failed' }]);
    expect(() => p.apply({ type: 'step_started', path: 'x', parent: undefined, stepId: 'x', kind: 'tool', attempt: 1, ...base, seq: 3 })).toThrow(/while the run is failed/);
  });
});
