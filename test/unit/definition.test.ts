import { describe, expect, it } from 'vitest';
import {
  Agent,
  AgentStep,
  ConditionalStep,
  LoopStep,
  ParallelStep,
  Tool,
  ToolStep,
  Workflow,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowDefinitionError,
  WorkflowEngine,
  Limits,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';

const noop = new Tool({ name: 'noop', execute: () => ({}) });
const ctx = () => new WorkflowContext({ workflowId: 'c' });

async function definitionIssues(workflow: Workflow, engine = new WorkflowEngine({ tools: [noop], logger: quietLogger() })) {
  try {
    await engine.executeWorkflow(workflow, ctx());
  } catch (err) {
    expect(err).toBeInstanceOf(WorkflowDefinitionError);
    return (err as WorkflowDefinitionError).issues;
  }
  throw new Error('expected a WorkflowDefinitionError');
}

describe('definition validation (before any step runs)', () => {
  it('names the step of an unknown tool and runs nothing', async () => {
    let ran = false;
    const spy = new Tool({ name: 'spy', execute: () => ((ran = true), {}) });
    const wf = new WorkflowBuilder('w').addStep(new ToolStep('first', spy)).addStep(new ParallelStep('par').addBranch(new ToolStep('ship', 'create_label'))).build();
    const issues = await definitionIssues(wf);
    expect(issues).toEqual([expect.objectContaining({ path: 'par/ship', code: 'UNKNOWN_TOOL' })]);
    expect(issues[0]!.message).toContain('create_label');
    expect(ran).toBe(false);
  });

  it('names an unknown agent and a missing model provider', async () => {
    const wf = new WorkflowBuilder('w').addStep(new AgentStep('review', 'reviewer').withInput('hi')).build();
    const issues = await definitionIssues(wf);
    expect(issues.map((i) => i.code).sort()).toEqual(['MODEL_PROVIDER_MISSING', 'UNKNOWN_AGENT']);
  });

  it('resolves names from execute options as well as the engine', async () => {
    const engine = new WorkflowEngine({ logger: quietLogger() });
    const wf = new WorkflowBuilder('w').addStep(new ToolStep('noop')).build();
    const result = await engine.executeWorkflow(wf, ctx(), { tools: [noop] });
    expect(result.status).toBe('completed');
  });

  it('rejects duplicate step ids anywhere in the tree', async () => {
    const wf = new WorkflowBuilder('w')
      .addStep(new ToolStep('a', noop))
      .addStep(new LoopStep('loop', new ToolStep('a', noop), (_c, i) => i < 1))
      .build();
    const issues = await definitionIssues(wf);
    expect(issues).toEqual([expect.objectContaining({ path: 'loop[]/a', code: 'DUPLICATE_STEP_ID' })]);
  });

  it('rejects ids that would break step paths', async () => {
    const wf = new WorkflowBuilder('w').addStep(new ToolStep('a/b', noop)).addStep(new ToolStep('c[1]', noop)).build();
    const issues = await definitionIssues(wf);
    expect(issues.map((i) => i.code)).toEqual(['INVALID_STEP_ID', 'INVALID_STEP_ID']);
  });

  it('rejects an error handler for a step that is not top-level', async () => {
    const wf = new Workflow('w').addStep(new ToolStep('a', noop)).addErrorHandler('ghost', () => null);
    expect(await definitionIssues(wf)).toEqual([expect.objectContaining({ path: 'ghost', code: 'UNKNOWN_STEP' })]);
  });

  it('reports incomplete composite steps with their path', async () => {
    const wf = new WorkflowBuilder('w')
      .addStep(new ConditionalStep('cond').ifTrue(new ToolStep('x', noop)))
      .addStep(new ParallelStep('empty'))
      .addStep(new LoopStep('loop'))
      .build();
    const issues = await definitionIssues(wf);
    expect(issues.map((i) => [i.path, i.code])).toEqual([
      ['cond', 'MISSING_FIELD'],
      ['empty', 'MISSING_FIELD'],
      ['loop', 'MISSING_FIELD'],
    ]);
  });

  it('rejects an empty workflow and too many branches', async () => {
    expect(await definitionIssues(new Workflow('empty'))).toEqual([expect.objectContaining({ code: 'EMPTY_WORKFLOW' })]);
    const wide = new ParallelStep('wide');
    for (let i = 0; i <= Limits.maxParallelBranches; i++) wide.addBranch(new ToolStep(`b${i}`, noop));
    const issues = await definitionIssues(new WorkflowBuilder('w').addStep(wide).build());
    expect(issues).toEqual([expect.objectContaining({ path: 'wide', code: 'TOO_MANY_BRANCHES' })]);
  });

  it('rejects nesting deeper than the limit', async () => {
    let step: ToolStep | ConditionalStep = new ToolStep('leaf', noop);
    for (let i = 0; i < Limits.maxNestingDepth; i++) step = new ConditionalStep(`c${i}`, () => true, step);
    const issues = await definitionIssues(new WorkflowBuilder('w').addStep(step).build());
    expect(issues.map((i) => i.code)).toContain('TOO_DEEP');
  });
});

describe('step options fail where they are written, naming the step and the limit', () => {
  it('timeouts', () => {
    expect(() => new ToolStep('s', noop).withTimeout(0)).toThrow(/s: timeout must be a number of seconds in \(0, 86400\]/);
    expect(() => new ToolStep('s', noop).withTimeout(Number.NaN)).toThrow(WorkflowDefinitionError);
  });

  it('retries', () => {
    expect(() => new ToolStep('s', noop).withRetry(-1)).toThrow(/attempts must be an integer from 1 to 101/);
    expect(() => new ToolStep('s', noop).withRetry({ maxRetries: 1, maxAttempts: 2 })).toThrow(/not both/);
    expect(new ToolStep('s', noop).withRetry({ maxAttempts: 3 }).toDefinition().retry.maxAttempts).toBe(3);
    expect(new ToolStep('s', noop).withRetry(3).toDefinition().retry.maxAttempts).toBe(4);
    expect(new ToolStep('s', noop).withRetry({ maxRetries: 2 }).toDefinition().retry.maxAttempts).toBe(3);
  });

  it('parallel and loop options', () => {
    expect(() => new ParallelStep('p').withFailurePolicy('sometimes' as never)).toThrow(/failurePolicy/);
    expect(() => new ParallelStep('p').addBranch(new ToolStep('a', noop)).withMinimumSuccessCount(2).toDefinition()).toThrow(/has 1 branches/);
    expect(() => new LoopStep('l', new ToolStep('a', noop), () => true, Limits.maxLoopIterations + 1)).toThrow(/maxIterations/);
  });

  it('tools and agents check their own specs', () => {
    expect(() => new Tool({ name: 'has space', execute: () => 1 })).toThrow(/name must be/);
    expect(() => new Tool({ name: 't' } as never)).toThrow(/needs execute/);
    expect(() => new Tool({ name: 't', module: 'relative/path.js' })).toThrow(/file URL or an absolute path/);
    expect(() => new Tool({ name: 't', parameters: { type: 'nonsense' }, execute: () => 1 })).toThrow(/not a valid JSON Schema/);
    expect(() => new Agent({ name: 'a', instructions: 'x', tools: [noop, noop] })).toThrow(/two tools are named noop/);
  });
});

describe('WorkflowContext', () => {
  it('seeds variables from initialData and reads them with get(key, fallback)', () => {
    const c = new WorkflowContext({ workflowId: 'w', initialData: { a: 1, b: 2 }, variables: { b: 3 } });
    expect(c.variables).toEqual({ a: 1, b: 3 });
    expect(c.initialData).toEqual({ a: 1, b: 2 });
    expect(c.get('a')).toBe(1);
    expect(c.get('missing', 'fallback')).toBe('fallback');
    expect(c.has('missing')).toBe(false);
  });

  it('is immutable: deriving returns a new context', () => {
    const c = new WorkflowContext({ workflowId: 'w', variables: { a: 1 } });
    const d = c.withVariable('b', 2);
    expect(c.variables).toEqual({ a: 1 });
    expect(d.variables).toEqual({ a: 1, b: 2 });
    expect(Object.isFrozen(d.variables)).toBe(true);
    expect(() => {
      (c.variables as Record<string, unknown>).a = 2;
    }).toThrow(TypeError);
  });

  it('requires a workflowId', () => {
    expect(() => new WorkflowContext({ workflowId: '' })).toThrow(/workflowId/);
  });
});

describe('compiled definitions are reused until a step changes', () => {
  it('sees a change to a nested step made between runs', async () => {
    const echo = new Tool({ name: 'echo_args', execute: (args: Record<string, unknown>) => args });
    const inner = new ToolStep('inner', echo, { v: 1 });
    const wf = new WorkflowBuilder('mutable').addStep(new ParallelStep('par').addBranch(inner)).build();
    const engine = new WorkflowEngine({ logger: quietLogger() });
    expect((await engine.executeWorkflow(wf, ctx())).context.get('v')).toBe(1);
    expect((await engine.executeWorkflow(wf, ctx())).context.get('v')).toBe(1);
    inner.withArgs({ v: 2 });
    expect((await engine.executeWorkflow(wf, ctx())).context.get('v')).toBe(2);
    inner.addCondition(() => false);
    const skipped = await engine.executeWorkflow(wf, ctx());
    expect(skipped.steps[0]!.children[0]!.status).toBe('skipped');
  });

  it('checks error handlers added after a cached compile', async () => {
    const wf = new Workflow('w').addStep(new ToolStep('a', noop));
    const engine = new WorkflowEngine({ tools: [noop], logger: quietLogger() });
    expect((await engine.executeWorkflow(wf, ctx())).status).toBe('completed');
    wf.addErrorHandler('ghost', () => null);
    expect(await definitionIssues(wf, engine)).toEqual([expect.objectContaining({ path: 'ghost', code: 'UNKNOWN_STEP' })]);
  });
});
