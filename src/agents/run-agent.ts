/**
 * The agent tool-calling loop (JAF's run loop): system prompt from the instructions, the step input as
 * the user message, tool calls run concurrently through the engine's executor, handoffs switching the
 * active agent, until a message with no tool calls gives the final answer.
 */
import type { WorkflowContext } from '../context.ts';
import { ErrorCode, stepError, toStepError, type StepError } from '../errors.ts';
import type { InvocationOutcome } from '../engine/executor.ts';
import { abortError } from '../engine/executor.ts';
import type { Tool } from '../tools/tool.ts';
import type { Agent } from './agent.ts';
import { decideHandoff, handoffToolResult, handoffToolSchema, isHandoffCall, type AgentResolver, type HandoffDecision } from './handoff.ts';
import { estimateRequestTokens, type BudgetGate, type BudgetReservation } from './budget.ts';
import type { ChatMessage, ModelProvider, ModelResponse, ToolCall, ToolSchema } from './model-provider.ts';

export interface AgentRunRequest {
  readonly agent: Agent;
  readonly input: string;
  readonly context: unknown;
  readonly workflow: WorkflowContext;
  /** The run's provider, for agents that have none of their own. */
  readonly provider: ModelProvider | undefined;
  /** A provider every agent must use, their own notwithstanding (a replay). */
  readonly forcedProvider?: ModelProvider;
  /** The model for the step's agent, instead of its own (AgentStep.withModel). */
  readonly model?: string;
  readonly signal: AbortSignal;
  /** Validates and runs one tool call through the engine's executor; `callPath` extends the step path. */
  readonly runTool: (tool: Tool, args: unknown, callPath: string) => Promise<InvocationOutcome>;
  /** Finds handoff targets named by string (the engine's agent registry). */
  readonly resolveAgent?: AgentResolver;
  /** Passed to the provider as `ModelRequest.onDelta`: answer text as it streams in, with the agent producing it and the turn. */
  readonly onDelta?: (agentName: string, text: string, turn: number) => void;
  /** Hears every model response, in order (for recording). Must not throw. */
  readonly onResponse?: (turn: number, agentName: string, response: ModelResponse) => void;
  /** The step's token budgets: each request must fit before it is sent; responses are charged. */
  readonly budget?: BudgetGate;
  /** Hears the run's usage so far after each response: what an attempt cut off by its timeout had used. */
  readonly onUsage?: (usage: AgentUsage) => void;
  /** Identifies the calls (ModelRequest.call) when an engine step runs the agent. */
  readonly call?: { readonly runId: string; readonly path: string; readonly attempt: number };
}

export interface AgentUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly turns: number;
  readonly toolCalls: number;
}

/** `agentName` is the agent active at the end: the one that answered, after any handoffs (`handoffs`, in order). */
export type AgentRunOutcome =
  | { readonly ok: true; readonly output: unknown; readonly usage: AgentUsage; readonly agentName: string; readonly handoffs: readonly string[] }
  | { readonly ok: false; readonly error: StepError; readonly usage: AgentUsage; readonly agentName: string; readonly handoffs: readonly string[] };

const anyObject = Object.freeze({ type: 'object' });

/** What the model sees of an agent: its system prompt and its tools (with the handoff tool, if any). */
interface ActiveAgent {
  readonly agent: Agent;
  readonly system: string;
  readonly tools: readonly ToolSchema[];
}

export async function runAgent(request: AgentRunRequest): Promise<AgentRunOutcome> {
  const { signal } = request;
  // Handoffs switch agents within the step; the step's agent's maxTurns bounds all of them together.
  const maxTurns = request.agent.maxTurns;
  let promptTokens = 0;
  let completionTokens = 0;
  let turns = 0;
  let toolCalls = 0;
  const handoffs: string[] = [];
  const usage = (): AgentUsage => ({ promptTokens, completionTokens, turns, toolCalls });
  let agentName = request.agent.name;
  const fail = (error: StepError): AgentRunOutcome => ({ ok: false, error, usage: usage(), agentName, handoffs });

  const activated = await activate(request, request.agent);
  if (!activated.ok) return fail(activated.error);
  let active = activated.value;
  const messages: ChatMessage[] = [
    { role: 'system', content: active.system },
    { role: 'user', content: request.input },
  ];

  while (turns < maxTurns) {
    if (signal.aborted) return fail(abortError(signal));
    const agent = active.agent;
    const onDelta = request.onDelta;
    // A request the budget refuses is not sent, so it is no turn.
    const provider = request.forcedProvider ?? agent.modelProvider ?? request.provider;
    if (provider === undefined) {
      return fail(stepError(ErrorCode.MODEL_INVALID_REQUEST, `agent ${agent.name} has no model provider (give it one, or the engine or the run one)`, undefined, false));
    }
    const budget = request.budget;
    let reservation: BudgetReservation | undefined;
    if (budget !== undefined && !budget.empty) {
      const admitted = await budget.admit(estimateRequestTokens(messages, active.tools, agent.maxTokens), agent.name, signal);
      if (!admitted.ok) return fail(admitted.error);
      reservation = admitted.reservation;
      if (signal.aborted) {
        reservation.settle(0);
        return fail(abortError(signal));
      }
    }
    turns += 1;
    const turn = turns;
    let response: ModelResponse;
    // A provider that ignores the signal may answer long after the step gave up: its hold on the
    // budgets goes with the abort (a late answer is still charged).
    const release = reservation === undefined ? undefined : () => reservation.release();
    if (release !== undefined) signal.addEventListener('abort', release, { once: true });
    try {
      response = checkResponse(
        await provider.getCompletion({
          agent,
          model: agent === request.agent && request.model !== undefined ? request.model : agent.model,
          messages: [...messages],
          tools: active.tools,
          outputSchema: agent.outputSchema,
          signal,
          ...(onDelta === undefined ? {} : { onDelta: (text: string) => onDelta(agent.name, text, turn) }),
          ...(request.call === undefined ? {} : { call: { ...request.call, turn } }),
        }),
      );
    } catch (err) {
      // What a failed request used is unknown: it is charged nothing.
      reservation?.settle(0);
      return fail(signal.aborted ? abortError(signal) : modelFailure(err));
    } finally {
      if (release !== undefined) signal.removeEventListener('abort', release);
    }
    const spent = { prompt: response.usage?.promptTokens ?? 0, completion: response.usage?.completionTokens ?? 0 };
    reservation?.settle(spent.prompt + spent.completion);
    promptTokens += spent.prompt;
    completionTokens += spent.completion;
    request.onUsage?.(usage());
    if (signal.aborted) return fail(abortError(signal));
    request.onResponse?.(turn, agent.name, response);
    const calls = response.message.toolCalls ?? [];
    if (calls.length === 0) return { ...finalAnswer(agent, response.message.content ?? '', usage()), agentName, handoffs };

    // The first handoff call of a turn decides (before any tool runs, so a bad one has no side effects).
    const handoffIndex = calls.findIndex((call) => isHandoffCall(agent, call));
    let handoff: Extract<HandoffDecision, { ok: true }> | undefined;
    if (handoffIndex >= 0) {
      const decision = decideHandoff(agent, calls[handoffIndex]!, request.agent, request.resolveAgent);
      if (!decision.ok) return fail(decision.error);
      handoff = decision;
    }

    messages.push({ role: 'assistant', content: response.message.content, toolCalls: calls });
    toolCalls += calls.length;
    const results = await Promise.all(
      calls.map((call, index) => {
        if (index === handoffIndex && handoff !== undefined) return handoffToolResult(handoff.target, handoff.message);
        if (isHandoffCall(agent, call)) return JSON.stringify({ status: 'error', code: ErrorCode.AGENT_HANDOFF_INVALID, message: 'only the first handoff of a turn is followed' });
        return runToolCall(request, agent, call, `${turns}.${index}`);
      }),
    );
    if (signal.aborted) return fail(abortError(signal));
    results.forEach((content, index) => {
      const call = calls[index]!;
      messages.push({ role: 'tool', content, toolCallId: call.id, name: call.name });
    });
    if (handoff !== undefined) {
      const next = await activate(request, handoff.target);
      if (!next.ok) return fail(next.error);
      active = next.value;
      agentName = active.agent.name;
      handoffs.push(agentName);
      messages[0] = { role: 'system', content: active.system };
    }
  }
  return fail(stepError(ErrorCode.MAX_TURNS_EXCEEDED, `agent ${agentName} gave no final answer within ${maxTurns} model calls`, { maxTurns }));
}

async function activate(request: AgentRunRequest, agent: Agent): Promise<{ ok: true; value: ActiveAgent } | { ok: false; error: StepError }> {
  let system: string;
  try {
    system = await agent.systemPrompt({ agentName: agent.name, context: request.context, workflow: request.workflow });
  } catch (err) {
    return { ok: false, error: stepError(ErrorCode.USER_FUNCTION_ERROR, `agent ${agent.name}: instructions threw: ${toStepError(err).message}`) };
  }
  const tools: ToolSchema[] = agent.tools.map((t) => ({ name: t.name, description: t.description, parameters: t.parameters ?? anyObject }));
  const handoffTool = handoffToolSchema(agent);
  if (handoffTool !== undefined) tools.push(handoffTool);
  return { ok: true, value: { agent, system, tools } };
}

/** A provider's failure as a StepError, keeping what a ModelError says (code, retryable, details such as retryAfterMs). */
function modelFailure(thrown: unknown): StepError {
  const error = toStepError(thrown, ErrorCode.MODEL_ERROR);
  const details = thrown instanceof Error ? (thrown as Error & { details?: unknown }).details : undefined;
  return typeof details === 'object' && details !== null && !Array.isArray(details) && error.details === undefined
    ? { ...error, details: details as Record<string, unknown> }
    : error;
}

/** A provider's answer, checked: a malformed one is the provider's fault (MODEL_ERROR), not the engine's. */
function checkResponse(response: ModelResponse): ModelResponse {
  const message = (response as Partial<ModelResponse> | null | undefined)?.message;
  if (typeof message !== 'object' || message === null) throw new Error('model provider returned no message');
  if (message.content !== null && message.content !== undefined && typeof message.content !== 'string') throw new Error('model message content is not a string');
  if (message.toolCalls !== undefined && !Array.isArray(message.toolCalls)) throw new Error('model message toolCalls is not an array');
  for (const call of message.toolCalls ?? []) {
    if (typeof call?.id !== 'string' || typeof call.name !== 'string') throw new Error('model tool call without an id or a name');
  }
  return response;
}

function finalAnswer(agent: Agent, content: string, usage: AgentUsage): { ok: true; output: unknown; usage: AgentUsage } | { ok: false; error: StepError; usage: AgentUsage } {
  if (agent.outputSchema === undefined) return { ok: true, output: content, usage };
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    return { ok: false, error: stepError(ErrorCode.AGENT_OUTPUT_INVALID, `agent ${agent.name}: final answer is not JSON but the agent has an outputSchema`), usage };
  }
  const problem = agent.checkOutput(parsed);
  if (problem !== undefined) return { ok: false, error: stepError(ErrorCode.AGENT_OUTPUT_INVALID, `agent ${agent.name}: ${problem}`), usage };
  return { ok: true, output: parsed, usage };
}

/** Runs one tool call and renders its result (or error) as the tool message the model reads next. */
async function runToolCall(request: AgentRunRequest, agent: Agent, call: ToolCall, position: string): Promise<string> {
  const tool = agent.tool(call.name);
  if (tool === undefined) {
    return JSON.stringify({ status: 'error', code: 'TOOL_NOT_FOUND', message: `no tool named ${call.name}; available: ${agent.tools.map((t) => t.name).join(', ') || 'none'}` });
  }
  let args: unknown;
  try {
    args = typeof call.arguments === 'string' ? (call.arguments.trim() === '' ? {} : JSON.parse(call.arguments)) : call.arguments;
  } catch {
    return JSON.stringify({ status: 'error', code: ErrorCode.INVALID_TOOL_ARGS, message: `arguments for ${call.name} are not valid JSON` });
  }
  const outcome = await request.runTool(tool, args, `${position}:${call.name}`);
  return outcome.kind === 'ok'
    ? JSON.stringify({ status: 'executed', result: outcome.output ?? null })
    : JSON.stringify({ status: 'error', code: outcome.error.code, message: outcome.error.message });
}
