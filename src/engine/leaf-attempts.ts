/** Attempts of the leaf kinds: a tool call, and an agent's tool-calling loop. */
import type { Agent } from '../agents/agent.ts';
import { runAgent, type AgentUsage } from '../agents/run-agent.ts';
import { noRetry, type ToolStepDefinition, type ValueSource } from '../definition/types.ts';
import { ErrorCode, stepError, toStepError } from '../errors.ts';
import type { Tool } from '../tools/tool.ts';
import { callUser, type Attempt, type AttemptOutcome, type Evaluated } from './attempt-support.ts';
import { cancellationError, raceCancellation } from './cancellation.ts';
import type { InvocationOutcome } from './executor.ts';
import type { RecordedModelResponse } from './events.ts';
import { OutputDeltas } from './output-deltas.ts';
import { encodeOutput } from './worker-protocol.ts';
import type { ModelResponse } from '../agents/model-provider.ts';

export async function toolAttempt(a: Attempt<'tool'>): Promise<AttemptOutcome> {
  const source = a.def.args;
  let args: unknown;
  if (source.kind === 'function') {
    const evaluated = await callUser(() => source.fn(a.ctx), 'params function', a.path, a.cancellation);
    if (!evaluated.ok) return { status: 'error', error: evaluated.error };
    args = evaluated.value;
  } else {
    // Static arguments need no promise turn: this is the hot path of every tool step.
    args = source.kind === 'static' ? source.value : {};
  }
  const outcome = await invokeTool(a, a.def.tool as Tool, args);
  return outcome.kind === 'ok' ? { status: 'ok', output: outcome.output, ctx: a.ctx } : { status: 'error', error: outcome.error };
}

function invokeTool(a: Attempt<'tool'>, tool: Tool, args: unknown): Promise<InvocationOutcome> {
  try {
    const invalid = tool.validateArgs(args);
    if (invalid !== undefined) return Promise.resolve({ kind: 'error', error: invalid });
    return a.env.executor.run({
      tool,
      args,
      runId: a.env.runId,
      stepPath: a.path,
      attempt: a.attempt,
      userContext: a.ctx.userContext,
      cancellation: a.cancellation,
      maxOutputBytes: a.env.maxOutputBytes,
    });
  } catch (err) {
    // Arguments whose getters throw, a tool object that is not quite a tool: the step's problem, as data.
    return Promise.resolve({ kind: 'error', error: toStepError(err) });
  }
}

export async function agentAttempt(a: Attempt<'agent'>): Promise<AttemptOutcome> {
  const input = await evaluate(a, a.def.input, 'input function', undefined);
  if (!input.ok) return { status: 'error', error: input.error };
  const context = await evaluate(a, a.def.context, 'context function', a.ctx.userContext);
  if (!context.ok) return { status: 'error', error: context.error };
  let message = input.value;
  if (message === undefined) {
    try {
      message = JSON.stringify(a.ctx.variables);
    } catch (err) {
      return { status: 'error', error: stepError(ErrorCode.INVALID_INPUT, `step ${a.path}: has no input, and its variables cannot be sent as JSON: ${(err as Error).message}`) };
    }
  }
  if (typeof message !== 'string') {
    return { status: 'error', error: stepError(ErrorCode.INVALID_INPUT, `step ${a.path}: input function returned ${typeof message}, expected a string`) };
  }
  // The agent's tools see the step's context, as its instructions do.
  const toolCtx = a.ctx.withUserContext(context.value);
  const { path, attempt, env } = a;
  const deltas = new OutputDeltas((agent, turn, text) => env.emitStepEvent({ type: 'step_output_delta', path, attempt, turn, agent, text }));
  /** The agent's tool calls still running: a cancelled attempt waits for them, so that their results precede the step's. */
  const toolCallsRunning = new Set<Promise<unknown>>();
  let ended = false;
  /** What the attempt's model calls used so far: reported even if the attempt is cut off. */
  let usageSoFar: AgentUsage | undefined;
  const agentRun = runAgent({
    agent: a.def.agent as Agent,
    input: message,
    context: context.value,
    workflow: a.ctx,
    provider: a.env.modelProvider,
    ...(a.env.forcedModelProvider === undefined ? {} : { forcedProvider: a.env.forcedModelProvider }),
    ...(a.def.model === undefined ? {} : { model: a.def.model }),
    signal: a.cancellation.signal,
    resolveAgent: (name) => a.env.agents.get(name),
    budget: env.budgetFor(path, a.def.tokenBudget),
    onUsage: (usage) => {
      usageSoFar = usage;
    },
    call: { runId: env.runId, path, attempt },
    onDelta: (agent, text, turn) => deltas.push(agent, text, turn),
    ...(env.recordModelResponses
      ? {
          onResponse: (turn: number, agent: string, response: ModelResponse) => {
            // The text streamed before this response goes first: the recording follows the stream.
            deltas.flush();
            env.emitStepEvent({ type: 'model_responded', path, attempt, turn, agent, model: response.model, response: recordedResponse(response) });
          },
        }
      : {}),
    // Each tool call is a step execution of its own, at `{agent step}/{attempt}.{turn}.{call}:{tool}`:
    // events, the pool, timeouts and idempotency keys as for any tool step.
    runTool: async (tool, args, callId) => {
      const def: ToolStepDefinition = {
        kind: 'tool',
        id: `${a.attempt}.${callId}`,
        conditions: [],
        retry: noRetry,
        timeoutMs: undefined,
        outputKey: undefined,
        tool,
        args: { kind: 'static', value: args },
      };
      if (ended) return { kind: 'error', error: cancellationError(a.cancellation) };
      const running = a.env.executeStep(def, toolCtx, { parent: a.path, prefix: a.path, cancellation: a.cancellation });
      toolCallsRunning.add(running);
      let call: Awaited<typeof running>;
      try {
        call = await running;
      } finally {
        toolCallsRunning.delete(running);
      }
      const { status, output, error } = call.result;
      return status === 'completed' ? { kind: 'ok', output, outputJson: undefined } : { kind: 'error', error: error ?? cancellationError(a.cancellation) };
    },
  });
  let outcome: Awaited<typeof agentRun> | { readonly aborted: true };
  try {
    outcome = await raceCancellation(agentRun, a.cancellation, (): { readonly aborted: true } => ({ aborted: true }));
  } finally {
    // Nothing streamed after this point may follow the step's result.
    deltas.close();
    ended = true;
  }
  if ('aborted' in outcome) {
    // Tool calls end at the cancellation by themselves (inline tools are raced, pool threads terminated).
    await Promise.allSettled(toolCallsRunning);
    return { status: 'error', error: cancellationError(a.cancellation), ...(usageSoFar === undefined ? {} : { metadata: { usage: usageSoFar } }) };
  }
  const metadata = { usage: outcome.usage, agent: outcome.agentName, ...(outcome.handoffs.length === 0 ? {} : { handoffs: outcome.handoffs }) };
  if (!outcome.ok) return { status: 'error', error: outcome.error, metadata };
  const encoded = encodeOutput(outcome.output, a.env.maxOutputBytes);
  return encoded.ok ? { status: 'ok', output: encoded.output, ctx: a.ctx, metadata } : { status: 'error', error: encoded.error, metadata };
}

/** A ModelResponse as event data (arguments as JSON text, usage only when reported). */
function recordedResponse(response: ModelResponse): RecordedModelResponse {
  const toolCalls = response.message.toolCalls?.map((call) => ({
    id: call.id,
    name: call.name,
    arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments),
  }));
  return {
    content: response.message.content,
    ...(toolCalls === undefined || toolCalls.length === 0 ? {} : { toolCalls }),
    ...(response.usage === undefined ? {} : { usage: { promptTokens: response.usage.promptTokens, completionTokens: response.usage.completionTokens } }),
  };
}

function evaluate<K extends 'tool' | 'agent', T, F>(a: Attempt<K>, source: ValueSource<T>, what: string, fallback: F): Promise<Evaluated<T | F>> {
  switch (source.kind) {
    case 'static':
      return Promise.resolve({ ok: true, value: source.value });
    case 'none':
      return Promise.resolve({ ok: true, value: fallback });
    case 'function':
      return callUser(() => source.fn(a.ctx), what, a.path, a.cancellation);
  }
}
