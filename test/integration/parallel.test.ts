/**
 * ParallelStep semantics (ARCHITECTURE.md invariant 8 and "Semantics"): isolated branches on one
 * snapshot, a deterministic join in branch order, waitForAll false = first *success* wins, failure
 * policies, and a group-wide timeout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ErrorCode,
  LoopStep,
  ParallelStep,
  Tool,
  ToolStep,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowEngine,
  type StepLike,
  type WorkflowResult,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';
import { aborted, deferred, findStep, Ledger, recordingClock } from './support.ts';

let engine: WorkflowEngine;
beforeAll(() => {
  engine = new WorkflowEngine({ logger: quietLogger(), clock: recordingClock() });
});
afterAll(async () => {
  await engine.close();
});

function run(step: StepLike, variables: Record<string, unknown> = {}): Promise<WorkflowResult> {
  const wf = new WorkflowBuilder(`wf-${step.id}`).addStep(step).build();
  return engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'parallel', variables }));
}

/** An inline tool returning `args` after `args.delayMs` (0: at once). */
const echo = new Tool({
  name: 'echo',
  execute: async (args: { out: Record<string, unknown>; delayMs?: number }) => {
    if (args.delayMs) await new Promise((resolve) => setTimeout(resolve, args.delayMs));
    return args.out;
  },
});

/** An inline tool that fails (after `args.delayMs`). */
const fail = new Tool({
  name: 'fail',
  execute: async (args: { message: string; delayMs?: number }) => {
    if (args.delayMs) await new Promise((resolve) => setTimeout(resolve, args.delayMs));
    throw new Error(args.message);
  },
});

/** Waits for its signal, records that it fired, and then settles as aborted (a well-behaved tool). */
function waitsForSignal(name: string, fired: Ledger): Tool {
  return new Tool({
    name,
    execute: async (_args, ctx) => {
      const reason = await aborted(ctx.signal);
      fired.hit(name);
      throw Object.assign(new Error(`${name} aborted`), { reason });
    },
  });
}

describe('branch isolation', () => {
  it('every branch sees the same snapshot of the context', async () => {
    const seen: Record<string, unknown>[] = [];
    const capture = (id: string) =>
      new ToolStep(id, echo).withParamsFunction((ctx) => {
        seen.push({ ...ctx.variables });
        return { out: { [`${id}_done`]: true } };
      });
    const result = await run(new ParallelStep('par').addBranch(capture('a')).addBranch(capture('b')).addBranch(capture('c')), { order: 42 });
    expect(result.status).toBe('completed');
    expect(seen).toEqual([{ order: 42 }, { order: 42 }, { order: 42 }]);
  });

  it("a branch's variable writes are invisible to its siblings, even after it made them", async () => {
    const aWrote = deferred();
    let bSaw: unknown = 'not read';
    // Branch a: a loop whose first iteration writes aWrote=true, visible to a's own second iteration.
    const aBody = new ToolStep('a_body', echo).withParamsFunction((ctx) => ({ out: { aWrote: true, aSawOwnWrite: ctx.get('aWrote', false) } }));
    const branchA = new LoopStep('a', aBody, (_ctx, i) => {
      if (i === 1) aWrote.resolve();
      return i < 2;
    });
    // Branch b: its second iteration starts only once a's write is in a's context, then reads.
    const bBody = new ToolStep('b_body', echo).withParamsFunction((ctx) => {
      if (ctx.loop?.iteration === 1) bSaw = ctx.get('aWrote', 'absent');
      return { out: { bRan: true } };
    });
    const branchB = new LoopStep('b', bBody, async (_ctx, i) => {
      if (i === 1) await aWrote.promise;
      return i < 2;
    });
    const result = await run(new ParallelStep('par').addBranch(branchA).addBranch(branchB));
    expect(result.status).toBe('completed');
    expect(bSaw).toBe('absent');
    expect(findStep(result, 'par/a').output).toEqual([
      { aWrote: true, aSawOwnWrite: false },
      { aWrote: true, aSawOwnWrite: true },
    ]);
    // After the join, everyone's writes are visible.
    expect(result.context.variables).toMatchObject({ aWrote: true, aSawOwnWrite: true, bRan: true });
  });

  it('two branches updating the same counter both start from the snapshot (no shared mutable state)', async () => {
    const increment = (id: string) => new ToolStep(id, echo).withParamsFunction((ctx) => ({ out: { counter: ctx.get<number>('counter') + 1, [`${id}_saw`]: ctx.get('counter') } }));
    const result = await run(new ParallelStep('par').addBranch(increment('a')).addBranch(increment('b')), { counter: 0 });
    expect(result.context.variables).toMatchObject({ counter: 1, a_saw: 0, b_saw: 0 });
  });

  it("the context's variables cannot be mutated in place by a step's function", async () => {
    let threw: unknown;
    const mutator = new ToolStep('mutator', echo).withParamsFunction((ctx) => {
      try {
        (ctx.variables as Record<string, unknown>).counter = 99;
      } catch (err) {
        threw = err;
      }
      return { out: {} };
    });
    const reader = new ToolStep('reader', echo).withParamsFunction((ctx) => ({ out: { readerSaw: ctx.get('counter') } }));
    const result = await run(new ParallelStep('par').addBranch(mutator).addBranch(reader), { counter: 1 });
    expect(threw).toBeInstanceOf(TypeError);
    expect(result.context.variables).toMatchObject({ counter: 1, readerSaw: 1 });
  });
});

describe('the join', () => {
  it('merges outputs in branch order, not completion order: the later branch wins a key clash', async () => {
    for (const [aDelay, bDelay] of [
      [60, 0],
      [0, 60],
    ] as const) {
      const par = new ParallelStep('par')
        .addBranch(new ToolStep('a', echo, { out: { shared: 'from a', onlyA: 1 }, delayMs: aDelay }))
        .addBranch(new ToolStep('b', echo, { out: { shared: 'from b', onlyB: 2 }, delayMs: bDelay }));
      const result = await run(par, { shared: 'initial' });
      expect(result.status).toBe('completed');
      expect(result.context.variables, `a after ${aDelay} ms, b after ${bDelay} ms`).toEqual({ shared: 'from b', onlyA: 1, onlyB: 2 });
      // The parallel's own output: each branch's output under its id, in branch order.
      const output = result.steps[0]!.output as Record<string, unknown>;
      expect(Object.keys(output)).toEqual(['a', 'b']);
      expect(output).toEqual({ a: { shared: 'from a', onlyA: 1 }, b: { shared: 'from b', onlyB: 2 } });
    }
  });

  it("the later branch wins a key clash even when it writes back the snapshot's value", async () => {
    // Branch b (later) outputs status: 'pending', which equals the value before the parallel step; the
    // merge in branch order must end with b's value, not a's.
    const par = new ParallelStep('par')
      .addBranch(new ToolStep('a', echo, { out: { status: 'approved' } }))
      .addBranch(new ToolStep('b', echo, { out: { status: 'pending' }, delayMs: 20 }));
    const result = await run(par, { status: 'pending' });
    expect(result.status).toBe('completed');
    expect(result.context.get('status')).toBe('pending');
  });

  it('is deterministic across repeated runs with random completion order', async () => {
    const outcomes = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const par = new ParallelStep('par');
      for (const id of ['a', 'b', 'c', 'd']) par.addBranch(new ToolStep(id, echo, { out: { winner: id, [id]: true }, delayMs: Math.floor(Math.random() * 15) }));
      const result = await run(par);
      outcomes.add(JSON.stringify(result.context.variables));
    }
    expect([...outcomes]).toEqual([JSON.stringify({ winner: 'd', a: true, b: true, c: true, d: true })]);
  });
});

describe('waitForAll: false', () => {
  it('the first *successful* branch wins even if another fails first; the rest end cancelled, their signals fired', async () => {
    const fired = new Ledger();
    const par = new ParallelStep('race')
      .addBranch(new ToolStep('fails_first', fail, { message: 'nope' }))
      .addBranch(new ToolStep('succeeds', echo, { out: { winner: 'succeeds' }, delayMs: 40 }))
      .addBranch(new ToolStep('never_done', waitsForSignal('never_done', fired)))
      .withWaitForAll(false);
    const result = await run(par);
    expect(result.status).toBe('completed');
    const step = result.steps[0]!;
    expect(step.status).toBe('completed');
    expect(step.output).toEqual({ succeeds: { winner: 'succeeds' } });
    expect(result.context.variables).toEqual({ winner: 'succeeds' });
    expect(findStep(result, 'race/fails_first').status).toBe('failed');
    expect(findStep(result, 'race/succeeds').status).toBe('completed');
    const loser = findStep(result, 'race/never_done');
    expect(loser.status).toBe('cancelled');
    expect(loser.error?.code).toBe(ErrorCode.CANCELLED);
    expect(fired.count('never_done')).toBe(1);
  });

  it('the positional constructor form works too: new ParallelStep(id, steps, false)', async () => {
    const fired = new Ledger();
    const par = new ParallelStep('race', [new ToolStep('slow', waitsForSignal('slow', fired)), new ToolStep('quick', echo, { out: { quick: true } })], false);
    const result = await run(par);
    expect(result.status).toBe('completed');
    expect(result.context.variables).toEqual({ quick: true });
    expect(findStep(result, 'race/slow').status).toBe('cancelled');
    expect(fired.count('slow')).toBe(1);
  });

  it('when every branch fails, the step fails with PARALLEL_FAILED', async () => {
    const par = new ParallelStep('race')
      .addBranch(new ToolStep('x', fail, { message: 'x broke' }))
      .addBranch(new ToolStep('y', fail, { message: 'y broke', delayMs: 10 }))
      .withWaitForAll(false);
    const result = await run(par);
    expect(result.status).toBe('failed');
    expect(result.steps[0]!.error?.code).toBe(ErrorCode.PARALLEL_FAILED);
    expect(result.error).toMatchObject({ code: ErrorCode.PARALLEL_FAILED, stepPath: 'race' });
    expect(findStep(result, 'race/x').status).toBe('failed');
    expect(findStep(result, 'race/y').status).toBe('failed');
  });
});

describe('failure policies (waitForAll: true)', () => {
  it('fail_fast (the default): the first failure cancels the rest, whose signals fire', async () => {
    const fired = new Ledger();
    const par = new ParallelStep('ff')
      .addBranch(new ToolStep('waits', waitsForSignal('waits', fired)))
      .addBranch(new ToolStep('breaks', fail, { message: 'payment service down', delayMs: 20 }))
      .addBranch(new ToolStep('done', echo, { out: { done: true } }));
    const started = performance.now();
    const result = await run(par);
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(result.status).toBe('failed');
    const step = result.steps[0]!;
    expect(step.error?.code).toBe(ErrorCode.PARALLEL_FAILED);
    expect(step.error?.message).toContain('payment service down');
    expect(step.error?.details).toMatchObject({ cause: { code: ErrorCode.TOOL_ERROR } });
    expect(findStep(result, 'ff/waits').status).toBe('cancelled');
    expect(findStep(result, 'ff/breaks').status).toBe('failed');
    expect(findStep(result, 'ff/done').status).toBe('completed');
    expect(fired.count('waits')).toBe(1);
  });

  it('continue_on_partial_failure with withMinimumSuccessCount(n): enough successes complete the step', async () => {
    const par = new ParallelStep('partial')
      .addBranch(new ToolStep('ok1', echo, { out: { ok1: true }, delayMs: 30 }))
      .addBranch(new ToolStep('bad', fail, { message: 'one bad apple' }))
      .addBranch(new ToolStep('ok2', echo, { out: { ok2: true }, delayMs: 30 }))
      .withFailurePolicy('continue_on_partial_failure')
      .withMinimumSuccessCount(2);
    const result = await run(par);
    expect(result.status).toBe('completed');
    // A failure does not cancel siblings under this policy.
    expect(findStep(result, 'partial/ok1').status).toBe('completed');
    expect(findStep(result, 'partial/ok2').status).toBe('completed');
    expect(findStep(result, 'partial/bad').status).toBe('failed');
    expect(result.steps[0]!.output).toEqual({ ok1: { ok1: true }, ok2: { ok2: true } });
    expect(result.context.variables).toEqual({ ok1: true, ok2: true });
  });

  it('continue_on_partial_failure with too few successes fails with PARALLEL_FAILED', async () => {
    const par = new ParallelStep('partial')
      .addBranch(new ToolStep('ok1', echo, { out: { ok1: true } }))
      .addBranch(new ToolStep('bad1', fail, { message: 'bad 1' }))
      .addBranch(new ToolStep('bad2', fail, { message: 'bad 2', delayMs: 10 }))
      .withFailurePolicy('continue_on_partial_failure')
      .withMinimumSuccessCount(2);
    const result = await run(par);
    expect(result.status).toBe('failed');
    expect(result.steps[0]!.error?.code).toBe(ErrorCode.PARALLEL_FAILED);
    expect(result.steps[0]!.error?.message).toMatch(/1 of 3/);
    expect(findStep(result, 'partial/bad2').status).toBe('failed');
    // Nothing of a failed step reaches the variables.
    expect(result.context.variables).toEqual({});
  });
});

describe("the parallel step's own timeout", () => {
  it('covers the whole group: running branches are cancelled at the deadline, even ones ignoring their signal', async () => {
    const fired = new Ledger();
    const deaf = new Tool({ name: 'deaf', execute: () => new Promise(() => {}) });
    const par = new ParallelStep('group')
      .addBranch(new ToolStep('polite', waitsForSignal('polite', fired)))
      .addBranch(new ToolStep('deaf', deaf))
      .addBranch(new ToolStep('quick', echo, { out: { quick: true } }))
      .withTimeout(0.3);
    const started = performance.now();
    const result = await run(par);
    const elapsed = performance.now() - started;
    expect(result.status).toBe('failed');
    const step = result.steps[0]!;
    expect(step.error?.code).toBe(ErrorCode.TIMEOUT);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(3_000);
    expect(step.executionTimeMs).toBeLessThan(3_000);
    expect(findStep(result, 'group/polite').status).toBe('cancelled');
    expect(findStep(result, 'group/deaf').status).toBe('cancelled');
    expect(findStep(result, 'group/quick').status).toBe('completed');
    expect(fired.count('polite')).toBe(1);
  });

  it('bounds the sum of sequential work inside a branch, not just one attempt', async () => {
    // Each iteration takes 120 ms (well under any per-step timeout); four of them overrun the group's 0.3 s.
    const slowBody = new ToolStep('tick', echo, { out: { ticked: true }, delayMs: 120 });
    const par = new ParallelStep('group').addBranch(new LoopStep('loop', slowBody, () => true, 4)).withTimeout(0.3);
    const started = performance.now();
    const result = await run(par);
    expect(result.steps[0]!.error?.code).toBe(ErrorCode.TIMEOUT);
    expect(performance.now() - started).toBeLessThan(3_000);
    const loop = findStep(result, 'group/loop');
    expect(loop.status).toBe('cancelled');
  });
});
