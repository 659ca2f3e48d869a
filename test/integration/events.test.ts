import { describe, expect, it } from 'vitest';
import {
  ConditionalStep,
  LoopStep,
  ParallelStep,
  Tool,
  ToolStep,
  Workflow,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowEngine,
  type RunEvent,
  type StepResult,
} from 'jaf-workflows';
import { logSink, quietLogger } from '../helpers/logging.ts';

const ok = (name: string, output: unknown = {}) => new Tool({ name, execute: () => output });
const failing = (name: string, retryable = true) =>
  new Tool({ name, execute: () => Promise.reject(Object.assign(new Error(`${name} broke`), { retryable })) });
const ctx = () => new WorkflowContext({ workflowId: 'c' });
const engine = () => new WorkflowEngine({ logger: quietLogger() });

describe('run events', () => {
  it('numbers every event 1..n with no gaps and describes the run in order', async () => {
    const events: RunEvent[] = [];
    const wf = new WorkflowBuilder('ordered')
      .addStep(new ToolStep('a', ok('a', { x: 1 })))
      .addStep(new ConditionalStep('cond', (c) => c.get('x') === 1, new ToolStep('inner', ok('inner'))))
      .addStep(new ToolStep('never', ok('never')).addCondition(() => false))
      .build();
    const result = await engine().executeWorkflow(wf, ctx(), { onEvent: (e) => events.push(e), runId: 'r1' });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.every((e) => e.runId === 'r1')).toBe(true);
    expect(events.map((e) => ('path' in e ? `${e.type}:${e.path}` : e.type))).toEqual([
      'run_started',
      'step_started:a',
      'step_completed:a',
      'step_started:cond',
      'step_started:cond/inner',
      'step_completed:cond/inner',
      'step_completed:cond',
      'step_skipped:never',
      'run_completed',
    ]);
    expect(result.runId).toBe('r1');
  });

  it('gives nested executions stable, unique paths', async () => {
    const paths: string[] = [];
    const wf = new WorkflowBuilder('nested')
      .addStep(new LoopStep('orders', new ParallelStep('fan').addBranch(new ToolStep('left', ok('l'))).addBranch(new ToolStep('right', ok('r'))), (_c, i) => i < 2))
      .build();
    await engine().executeWorkflow(wf, ctx(), { onEvent: (e) => e.type === 'step_completed' && paths.push(e.path) });
    expect(paths).toEqual(['orders[0]/fan/left', 'orders[0]/fan/right', 'orders[0]/fan', 'orders[1]/fan/left', 'orders[1]/fan/right', 'orders[1]/fan', 'orders']);
  });
});

describe('streaming equals execute', () => {
  it('yields each top-level result as it completes, error-handler steps included', async () => {
    const build = () =>
      new Workflow('recovering')
        .addStep(new ToolStep('first', ok('first', { a: 1 })))
        .addStep(new ToolStep('pay', failing('pay', false)))
        .addStep(new ToolStep('last', ok('last', { done: true })))
        .addErrorHandler('pay', () => new ToolStep('manual', ok('manual', { paid: 'manually' })));
    const executed = await engine().executeWorkflow(build(), ctx());
    const stream = engine().executeWorkflowStream(build(), ctx());
    const streamed: StepResult[] = [];
    for await (const step of stream) streamed.push(step);
    const streamedResult = await stream.result;
    const shape = (steps: readonly StepResult[]) => steps.map((s) => [s.path, s.status, s.output]);
    expect(shape(streamed)).toEqual([
      ['first', 'completed', { a: 1 }],
      ['pay', 'failed', undefined],
      ['pay:recover/manual', 'completed', { paid: 'manually' }],
      ['last', 'completed', { done: true }],
    ]);
    expect(shape(streamed)).toEqual(shape(executed.steps));
    expect(shape(streamedResult.steps)).toEqual(shape(executed.steps));
    expect(executed.status).toBe('completed');
    expect(executed.stepsCompleted).toBe(3);
    expect(executed.successRate).toBe(75);
    expect(executed.context.get('paid')).toBe('manually');
  });

  it('rejects the iterator (before any step) when the definition is invalid', async () => {
    const stream = engine().executeWorkflowStream(new WorkflowBuilder('bad').addStep(new ToolStep('x', 'missing')).build(), ctx());
    await expect(async () => {
      for await (const _ of stream) void _;
    }).rejects.toThrow(/UNKNOWN_TOOL/);
    await expect(stream.result).rejects.toThrow(/missing/);
  });
});

describe('workflow-wide error handler', () => {
  it('retry re-runs the step (attempts continue), continue tolerates, fail stops', async () => {
    let calls = 0;
    const flaky = new Tool({ name: 'flaky', execute: () => (++calls < 3 ? Promise.reject(new Error('network down')) : { fixed: true }) });
    const events: RunEvent[] = [];
    const wf = new WorkflowBuilder('handled')
      .addStep(new ToolStep('flaky', flaky))
      .addStep(new ToolStep('optional', failing('optional')))
      .addStep(new ToolStep('after', ok('after', { after: true })))
      .withErrorHandler((error, step) => ({
        action: error.message.includes('network') ? 'retry' : step.id === 'optional' ? 'continue' : 'fail',
        escalate: true,
      }))
      .build();
    const result = await engine().executeWorkflow(wf, ctx(), { onEvent: (e) => events.push(e) });
    expect(result.status).toBe('completed');
    expect(result.steps.map((s) => [s.path, s.status, s.attempts])).toEqual([
      ['flaky', 'completed', 3],
      ['optional', 'failed', 1],
      ['after', 'completed', 1],
    ]);
    expect(result.steps[1]!.metadata.errorHandling).toMatchObject({ action: 'continue', escalate: true });
    expect(events.filter((e) => e.type === 'step_retrying').map((e) => (e as { reason: string }).reason)).toEqual(['error_handler', 'error_handler']);
  });

  it('stops asking after maxHandlerRetries and fails the run', async () => {
    const wf = new WorkflowBuilder('stubborn').addStep(new ToolStep('s', failing('s'))).withErrorHandler(() => ({ action: 'retry' })).build();
    const result = await new WorkflowEngine({ logger: quietLogger(), maxHandlerRetries: 2 }).executeWorkflow(wf, ctx());
    expect(result.status).toBe('failed');
    expect(result.steps[0]!.attempts).toBe(3);
    expect(result.error).toMatchObject({ code: 'TOOL_ERROR', stepPath: 's' });
  });

  it('does not retry a step that never started (its condition threw)', async () => {
    const wf = new WorkflowBuilder('bad_condition')
      .addStep(
        new ToolStep('s', ok('s')).addCondition(() => {
          throw new Error('typo in condition');
        }),
      )
      .withErrorHandler(() => ({ action: 'retry' }))
      .build();
    const result = await engine().executeWorkflow(wf, ctx());
    expect(result.status).toBe('failed');
    expect(result.error).toMatchObject({ code: 'USER_FUNCTION_ERROR', message: 'step s: condition threw: typo in condition' });
    expect(result.steps[0]!.attempts).toBe(0);
  });

  it('a handler that throws fails the run with the step error', async () => {
    const wf = new WorkflowBuilder('throwing')
      .addStep(new ToolStep('s', failing('s')))
      .withErrorHandler(() => {
        throw new Error('handler bug');
      })
      .build();
    const result = await engine().executeWorkflow(wf, ctx());
    expect(result.status).toBe('failed');
    expect(result.steps[0]!.metadata.errorHandling).toMatchObject({ action: 'fail', handlerError: 'step s: error handler threw: handler bug' });
  });
});

describe('logging', () => {
  it('binds run and step to every line', async () => {
    const { logger, lines } = logSink('debug');
    const wf = new WorkflowBuilder('logged').addStep(new ToolStep('a', ok('a'))).addStep(new ToolStep('b', failing('b', false))).build();
    await new WorkflowEngine({ logger }).executeWorkflow(wf, ctx(), { runId: 'run-9' });
    expect(lines.every((l) => l.runId === 'run-9' && l.workflowId === 'logged')).toBe(true);
    const failed = lines.find((l) => l.msg === 'step b failed');
    expect(failed).toMatchObject({ level: 40, stepPath: 'b', attempt: 1, error: { code: 'TOOL_ERROR', message: 'b broke' } });
    expect(lines.at(-1)).toMatchObject({ msg: 'workflow logged failed', status: 'failed', totalSteps: 2, stepsCompleted: 1 });
    expect(lines.some((l) => l.msg === 'step a started' && l.stepPath === 'a')).toBe(true);
  });
});
