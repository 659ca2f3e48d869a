/**
 * One attempt of each step kind, as a handler table keyed by kind (the compiler checks it is complete).
 * An attempt never throws: user functions that throw become USER_FUNCTION_ERROR, aborts become the
 * abort's StepError. Retries, timeouts, conditions and events are the caller's (`Run.executeStep`).
 */
import type { Agent } from '../agents/agent.ts';
import type { ModelProvider } from '../agents/model-provider.ts';
import { runAgent } from '../agents/run-agent.ts';
import type { WorkflowContext } from '../context.ts';
import type { StepDefinition, StepDefinitionOf, StepKind, ValueSource } from '../definition/types.ts';
import { ErrorCode, stepError, toStepError, type StepError } from '../errors.ts';
import type { Tool } from '../tools/tool.ts';
import type { StepResultData } from './events.ts';
import { cancellationError, type Cancellation } from './cancellation.ts';
import type { InvocationOutcome, ToolExecutor } from './executor.ts';
import { encodeOutput } from './worker-protocol.ts';

export type AttemptOutcome =
  | { readonly status: 'ok'; readonly output: unknown; readonly ctx: WorkflowContext; readonly metadata?: Record<string, unknown> }
  | { readonly status: 'skipped'; readonly ctx: WorkflowContext; readonly metadata?: Record<string, unknown> }
  | { readonly status: 'error'; readonly error: StepError; readonly metadata?: Record<string, unknown> };

export interface StepScope {
  /** Path of the enclosing step (undefined at top level); events name it as the parent. */
  readonly parent: string | undefined;
  /** Prefix of this step's path: the parent's path, or `loop[i]` inside a loop iteration. */
  readonly prefix: string | undefined;
  readonly cancellation: Cancellation;
  /** Top-level steps: the workflow loop emits the finish event after error handling. */
  readonly deferFinish?: boolean;
  /** Merged into the step's result metadata (e.g. `replaces` for a replacement step). */
  readonly metadata?: Readonly<Record<string, unknown>>;
  /** Rebuilding the context of a recorded composite: children replay their records and nothing runs. */
  readonly replayOnly?: boolean;
}

export interface StepOutcome {
  readonly result: StepResultData;
  readonly ctx: WorkflowContext;
  /** The result was already recorded (a parent's retry, or recovery): nothing ran and no event was emitted. */
  readonly replayed: boolean;
}

/** What an attempt may use from its run. */
export interface AttemptEnv {
  readonly runId: string;
  readonly executor: ToolExecutor;
  readonly modelProvider: ModelProvider | undefined;
  readonly maxOutputBytes: number;
  executeStep(def: StepDefinition, ctx: WorkflowContext, scope: StepScope): Promise<StepOutcome>;
}

export interface Attempt<K extends StepKind> {
  readonly env: AttemptEnv;
  readonly def: StepDefinitionOf<K>;
  readonly ctx: WorkflowContext;
  readonly path: string;
  readonly attempt: number;
  readonly cancellation: Cancellation;
  readonly replayOnly: boolean;
}

function childScope<K extends StepKind>(a: Attempt<K>, prefix: string, cancellation: Cancellation = a.cancellation): StepScope {
  return { parent: a.path, prefix, cancellation, replayOnly: a.replayOnly };
}

type AttemptRunners = { readonly [K in StepKind]: (a: Attempt<K>) => Promise<AttemptOutcome> };

export const attemptRunners: AttemptRunners = {
  tool: runToolAttempt,
  agent: runAgentAttempt,
  conditional: runConditionalAttempt,
  parallel: runParallelAttempt,
  loop: runLoopAttempt,
};

export function isLeaf(kind: StepKind): boolean {
  return kind === 'tool' || kind === 'agent';
}

async function runToolAttempt(a: Attempt<'tool'>): Promise<AttemptOutcome> {
  const source = a.def.args;
  let args: unknown = source.kind === 'static' ? source.value : {};
  if (source.kind === 'function') {
    const evaluated = await callUser(() => source.fn(a.ctx), 'params function', a.path);
    if (!evaluated.ok) return { status: 'error', error: evaluated.error };
    args = evaluated.value;
  }
  const outcome = await invokeTool(a, a.def.tool as Tool, args, a.path);
  return outcome.kind === 'ok' ? { status: 'ok', output: outcome.output, ctx: a.ctx } : { status: 'error', error: outcome.error };
}

function invokeTool<K extends StepKind>(a: Attempt<K>, tool: Tool, args: unknown, stepPath: string): Promise<InvocationOutcome> {
  const invalid = tool.validateArgs(args);
  if (invalid !== undefined) return Promise.resolve({ kind: 'error', error: invalid });
  return a.env.executor.run({
    tool,
    args,
    runId: a.env.runId,
    stepPath,
    attempt: a.attempt,
    userContext: a.ctx.userContext,
    cancellation: a.cancellation,
    maxOutputBytes: a.env.maxOutputBytes,
  });
}

async function runAgentAttempt(a: Attempt<'agent'>): Promise<AttemptOutcome> {
  const provider = a.env.modelProvider;
  if (provider === undefined) return { status: 'error', error: stepError(ErrorCode.INTERNAL, 'agent step without a model provider passed validation') };
  const input = await evaluate(a.def.input, a.ctx, 'input function', a.path, undefined);
  if (!input.ok) return { status: 'error', error: input.error };
  const context = await evaluate(a.def.context, a.ctx, 'context function', a.path, a.ctx.userContext);
  if (!context.ok) return { status: 'error', error: context.error };
  const message = input.value ?? JSON.stringify(a.ctx.variables);
  if (typeof message !== 'string') {
    return { status: 'error', error: stepError(ErrorCode.USER_FUNCTION_ERROR, `step ${a.path}: input function returned ${typeof message}, expected a string`) };
  }
  const outcome = await abortable(a.cancellation, () =>
    runAgent({
      agent: a.def.agent as Agent,
      input: message,
      context: context.value,
      workflow: a.ctx,
      provider,
      signal: a.cancellation.signal,
      runTool: (tool, args, callPath) => invokeTool(a, tool, args, `${a.path}/${callPath}`),
    }),
  );
  if (!('usage' in outcome)) return { status: 'error', error: outcome.error };
  const metadata = { usage: outcome.usage };
  if (!outcome.ok) return { status: 'error', error: outcome.error, metadata };
  const encoded = encodeOutput(outcome.output, a.env.maxOutputBytes);
  return encoded.ok ? { status: 'ok', output: encoded.output, ctx: a.ctx, metadata } : { status: 'error', error: encoded.error, metadata };
}

async function runConditionalAttempt(a: Attempt<'conditional'>): Promise<AttemptOutcome> {
  const holds = await callUser(() => a.def.predicate(a.ctx), 'condition', a.path);
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
      return { status: 'error', error: inner.result.error ?? stepError(ErrorCode.INTERNAL, `step ${inner.result.path} failed without an error`), metadata };
  }
}

async function runParallelAttempt(a: Attempt<'parallel'>): Promise<AttemptOutcome> {
  const { def } = a;
  const group = a.cancellation.child();
  const outcomes: (StepOutcome | undefined)[] = new Array(def.branches.length);
  let winner: number | undefined;
  const snapshot = a.ctx.fork();
  // Dispatched together, so pool branches run on different threads; each sees the same snapshot.
  await Promise.all(
    def.branches.map(async (branch, index) => {
      const outcome = await a.env.executeStep(branch, snapshot, childScope(a, a.path, group));
      outcomes[index] = outcome;
      const status = outcome.result.status;
      if (def.waitForAll) {
        if (status === 'failed' && def.failurePolicy === 'fail_fast' && !group.aborted) {
          group.abort(stepError(ErrorCode.CANCELLED, `cancelled: sibling branch ${branch.id} failed`));
        }
      } else if (status === 'completed' && winner === undefined) {
        winner = index;
        group.abort(stepError(ErrorCode.CANCELLED, `cancelled: branch ${branch.id} succeeded first`));
      }
    }),
  );
  group.unlink();

  const settled = outcomes as StepOutcome[];
  const counts = { completed: 0, failed: 0, skipped: 0, cancelled: 0 };
  for (const o of settled) counts[o.result.status] += 1;
  const metadata = { ...counts };
  const wins = def.waitForAll ? settled.map((o) => o.result.status === 'completed') : settled.map((_, i) => i === winner);

  if (def.waitForAll) {
    const firstFailure = settled.find((o) => o.result.status === 'failed');
    if (a.cancellation.aborted && (firstFailure === undefined || def.failurePolicy !== 'fail_fast')) return { status: 'error', error: cancellationError(a.cancellation), metadata };
    if (def.failurePolicy === 'fail_fast' && firstFailure !== undefined) {
      const cause = firstFailure.result.error;
      return { status: 'error', error: branchFailure(`branch ${firstFailure.result.stepId} failed: ${cause?.message ?? 'unknown error'}`, cause), metadata };
    }
    const required = def.failurePolicy === 'continue_on_partial_failure' ? (def.minimumSuccessCount ?? 1) : 0;
    if (counts.completed < required) {
      const cause = firstFailure?.result.error;
      return { status: 'error', error: branchFailure(`${counts.completed} of ${settled.length} branches succeeded; at least ${required} required`, cause), metadata };
    }
  } else if (winner === undefined) {
    if (a.cancellation.aborted) return { status: 'error', error: cancellationError(a.cancellation), metadata };
    const cause = settled.find((o) => o.result.status === 'failed')?.result.error;
    return { status: 'error', error: branchFailure(`no branch succeeded (${counts.failed} failed, ${counts.skipped} skipped)`, cause), metadata };
  }

  // Join: what each winning branch wrote, applied in branch order, so the result is deterministic.
  const output: Record<string, unknown> = {};
  let joined: Record<string, unknown> = {};
  settled.forEach((o, index) => {
    if (!wins[index]) return;
    output[o.result.stepId] = o.result.output;
    joined = { ...joined, ...o.ctx.writtenSinceFork() };
  });
  return { status: 'ok', output, ctx: Object.keys(joined).length === 0 ? a.ctx : a.ctx.withVariables(joined), metadata };
}

function branchFailure(message: string, cause: StepError | undefined): StepError {
  return stepError(ErrorCode.PARALLEL_FAILED, message, cause === undefined ? undefined : { cause }, cause?.retryable ?? true);
}

async function runLoopAttempt(a: Attempt<'loop'>): Promise<AttemptOutcome> {
  const { def } = a;
  const outer = a.ctx.loop;
  const outputs: unknown[] = [];
  let ctx = a.ctx;
  let iteration = 0;
  let stoppedBy: 'condition' | 'max_iterations' = 'max_iterations';
  while (iteration < def.maxIterations) {
    if (a.cancellation.aborted) return { status: 'error', error: cancellationError(a.cancellation), metadata: { iterations: iteration } };
    const inLoop = ctx.inLoop({ stepId: def.id, iteration });
    const proceed = await callUser(() => def.condition(inLoop, iteration), 'loop condition', a.path);
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

type Evaluated<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: StepError };

function evaluate<T, F>(source: ValueSource<T>, ctx: WorkflowContext, what: string, path: string, fallback: F): Promise<Evaluated<T | F>> {
  switch (source.kind) {
    case 'static':
      return Promise.resolve({ ok: true, value: source.value });
    case 'none':
      return Promise.resolve({ ok: true, value: fallback });
    case 'function':
      return callUser(() => source.fn(ctx), what, path);
  }
}

/** Calls a user function; a throw becomes USER_FUNCTION_ERROR naming the step and the function. */
async function callUser<T>(fn: () => T | Promise<T>, what: string, path: string): Promise<Evaluated<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: stepError(ErrorCode.USER_FUNCTION_ERROR, `step ${path}: ${what} threw: ${toStepError(err).message}`) };
  }
}

/** Ends with the cancellation's StepError as soon as it aborts, whatever `work` is doing. */
function abortable<T>(cancellation: Cancellation, work: () => Promise<T>): Promise<T | { readonly error: StepError }> {
  if (cancellation.aborted) return Promise.resolve({ error: cancellationError(cancellation) });
  return new Promise((resolve, reject) => {
    const unsubscribe = cancellation.onAbort(() => resolve({ error: cancellationError(cancellation) }));
    work().then(
      (value) => {
        unsubscribe();
        resolve(value);
      },
      (err: unknown) => {
        unsubscribe();
        reject(err);
      },
    );
  });
}
