/**
 * Attempts of the composite kinds, and their replays. An attempt records the decisions it took
 * (`branch`/`delegatedTo`, `winner`, `iterations`) in its result's metadata, so that a replay can
 * rebuild the same context from the children's records without asking user functions again.
 */
import type { WorkflowContext } from '../context.ts';
import { ErrorCode, stepError, type StepError } from '../errors.ts';
import { callUser, childScope, replayScope, type Attempt, type AttemptOutcome, type StepOutcome } from './attempt-support.ts';
import { cancellationError } from './cancellation.ts';
import type { StepResultData } from './events.ts';

export async function conditionalAttempt(a: Attempt<'conditional'>): Promise<AttemptOutcome> {
  const holds = await callUser(() => a.def.predicate(a.ctx), 'condition', a.path, a.cancellation);
  if (!holds.ok) return { status: 'error', error: holds.error };
  const branch = holds.value ? 'true' : 'false';
  const chosen = holds.value ? a.def.ifTrue : a.def.ifFalse;
  if (chosen === undefined) return { status: 'skipped', ctx: a.ctx, metadata: { branch } };
  const inner = await a.env.executeStep(chosen, a.ctx, childScope(a, a.path));
  const metadata = { branch, delegatedTo: chosen.id };
  switch (inner.result.status) {
    case 'completed':
      return { status: 'ok', output: inner.result.output, ctx: inner.ctx, metadata };
    case 'skipped':
      return { status: 'skipped', ctx: inner.ctx, metadata };
    case 'failed':
    case 'cancelled':
      return { status: 'error', error: inner.result.error ?? cancellationError(a.cancellation), metadata };
  }
}

export async function replayConditional(a: Attempt<'conditional'>, recorded: StepResultData): Promise<WorkflowContext> {
  const chosenId = recorded.metadata?.delegatedTo;
  const chosen = [a.def.ifTrue, a.def.ifFalse].find((def) => def !== undefined && def.id === chosenId);
  if (chosen === undefined) return a.ctx;
  return (await a.env.executeStep(chosen, a.ctx, replayScope(a, a.path))).ctx;
}

export async function parallelAttempt(a: Attempt<'parallel'>): Promise<AttemptOutcome> {
  const { def } = a;
  const group = a.cancellation.child();
  let winner: number | undefined;
  const snapshot = a.ctx.fork();
  // Dispatched together, so pool branches run on different threads; each sees the same snapshot.
  const settled = await Promise.allSettled(
    def.branches.map(async (branch, index) => {
      const outcome = await a.env.executeStep(branch, snapshot, childScope(a, a.path, group));
      const status = outcome.result.status;
      if (def.waitForAll) {
        if (status === 'failed' && def.failurePolicy === 'fail_fast' && !group.aborted) {
          group.abort(stepError(ErrorCode.CANCELLED, `cancelled: sibling branch ${branch.id} failed`));
        }
      } else if (status === 'completed' && winner === undefined) {
        winner = index;
        group.abort(stepError(ErrorCode.CANCELLED, `cancelled: branch ${branch.id} succeeded first`));
      }
      return outcome;
    }),
  );
  group.unlink();
  const outcomes: StepOutcome[] = [];
  for (const s of settled) {
    if (s.status === 'rejected') {
      // executeStep turns failures into data; a rejection is an engine bug. Stop the siblings first.
      group.abort(stepError(ErrorCode.CANCELLED, 'cancelled: a sibling branch hit an engine error'));
      return { status: 'error', error: stepError(ErrorCode.INTERNAL, `step ${a.path}: ${String((s.reason as Error)?.message ?? s.reason)}`) };
    }
    outcomes.push(s.value);
  }

  const counts = { completed: 0, failed: 0, skipped: 0, cancelled: 0 };
  for (const o of outcomes) counts[o.result.status] += 1;
  const winnerId = winner === undefined ? undefined : def.branches[winner]!.id;
  const metadata = winnerId === undefined ? { ...counts } : { ...counts, winner: winnerId };

  if (def.waitForAll) {
    const firstFailure = outcomes.find((o) => o.result.status === 'failed');
    if (a.cancellation.aborted && (firstFailure === undefined || def.failurePolicy !== 'fail_fast')) {
      return { status: 'error', error: cancellationError(a.cancellation), metadata };
    }
    if (def.failurePolicy === 'fail_fast' && firstFailure !== undefined) {
      const cause = firstFailure.result.error;
      return { status: 'error', error: branchFailure(`branch ${firstFailure.result.stepId} failed: ${cause?.message ?? 'unknown error'}`, cause), metadata };
    }
    const required = def.failurePolicy === 'continue_on_partial_failure' ? (def.minimumSuccessCount ?? 1) : 0;
    if (counts.completed < required) {
      const cause = firstFailure?.result.error;
      return { status: 'error', error: branchFailure(`${counts.completed} of ${outcomes.length} branches succeeded; at least ${required} required`, cause), metadata };
    }
  } else if (winner === undefined) {
    if (a.cancellation.aborted) return { status: 'error', error: cancellationError(a.cancellation), metadata };
    const cause = outcomes.find((o) => o.result.status === 'failed')?.result.error;
    return { status: 'error', error: branchFailure(`no branch succeeded (${counts.failed} failed, ${counts.skipped} skipped)`, cause), metadata };
  }
  const wins = outcomes.map((o, index) => (def.waitForAll ? o.result.status === 'completed' : index === winner));
  return { status: 'ok', ...join(a.ctx, outcomes, wins), metadata };
}

export async function replayParallel(a: Attempt<'parallel'>, recorded: StepResultData): Promise<WorkflowContext> {
  const snapshot = a.ctx.fork();
  const outcomes: StepOutcome[] = [];
  for (const branch of a.def.branches) outcomes.push(await a.env.executeStep(branch, snapshot, replayScope(a, a.path)));
  const winner = recorded.metadata?.winner;
  const wins = outcomes.map((o) => (a.def.waitForAll ? o.result.status === 'completed' : o.result.stepId === winner));
  return join(a.ctx, outcomes, wins).ctx;
}

/** What each winning branch wrote, applied in branch order, so the result is deterministic. */
function join(ctx: WorkflowContext, outcomes: readonly StepOutcome[], wins: readonly boolean[]): { output: Record<string, unknown>; ctx: WorkflowContext } {
  const output: Record<string, unknown> = {};
  let joined: Record<string, unknown> = {};
  outcomes.forEach((o, index) => {
    if (!wins[index]) return;
    output[o.result.stepId] = o.result.output;
    joined = { ...joined, ...o.ctx.writtenSinceFork() };
  });
  return { output, ctx: Object.keys(joined).length === 0 ? ctx : ctx.withVariables(joined) };
}

function branchFailure(message: string, cause: StepError | undefined): StepError {
  return stepError(ErrorCode.PARALLEL_FAILED, message, cause === undefined ? undefined : { cause }, cause?.retryable ?? true);
}

export async function loopAttempt(a: Attempt<'loop'>): Promise<AttemptOutcome> {
  const { def } = a;
  const outer = a.ctx.loop;
  const outputs: unknown[] = [];
  let ctx = a.ctx;
  let iteration = 0;
  let stoppedBy: 'condition' | 'max_iterations' = 'max_iterations';
  while (iteration < def.maxIterations) {
    if (a.cancellation.aborted) return { status: 'error', error: cancellationError(a.cancellation), metadata: { iterations: iteration } };
    const inLoop = ctx.inLoop({ stepId: def.id, iteration });
    const current = iteration;
    const proceed = await callUser(() => def.condition(inLoop, current), 'loop condition', a.path, a.cancellation);
    if (!proceed.ok) return { status: 'error', error: proceed.error, metadata: { iterations: iteration } };
    if (!proceed.value) {
      stoppedBy = 'condition';
      break;
    }
    const body = await a.env.executeStep(def.body, inLoop, childScope(a, `${a.path}[${iteration}]`));
    const { status, error } = body.result;
    if (status === 'failed' || status === 'cancelled') {
      const metadata = { iterations: iteration, failedIteration: iteration };
      if (status === 'cancelled' || error === undefined) return { status: 'error', error: error ?? cancellationError(a.cancellation), metadata };
      return { status: 'error', error: stepError(ErrorCode.LOOP_FAILED, `iteration ${iteration} failed: ${error.message}`, { cause: error, iteration }, error.retryable), metadata };
    }
    outputs.push(body.result.output ?? null);
    ctx = body.ctx;
    iteration += 1;
  }
  return { status: 'ok', output: outputs, ctx: ctx.inLoop(outer), metadata: { iterations: iteration, stoppedBy } };
}

export async function replayLoop(a: Attempt<'loop'>, recorded: StepResultData): Promise<WorkflowContext> {
  const iterations = typeof recorded.metadata?.iterations === 'number' ? recorded.metadata.iterations : 0;
  let ctx = a.ctx;
  for (let iteration = 0; iteration < iterations; iteration++) {
    const inLoop = ctx.inLoop({ stepId: a.def.id, iteration });
    ctx = (await a.env.executeStep(a.def.body, inLoop, replayScope(a, `${a.path}[${iteration}]`))).ctx;
  }
  return ctx.inLoop(a.ctx.loop);
}
