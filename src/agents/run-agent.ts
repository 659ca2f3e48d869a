/**
 * The agent tool-calling loop (JAF's run loop, one agent): system prompt from the instructions, the
 * step input as the user message, tool calls run concurrently through the engine's executor, until a
 * message with no tool calls gives the final answer.
 */
import type { WorkflowContext } from '../context.ts';
import { ErrorCode, stepError, toStepError, type StepError } from '../errors.ts';
import type { InvocationOutcome } from '../engine/executor.ts';
import { abortError } from '../engine/executor.ts';
import type { Tool } from '../tools/tool.ts';
import type { Agent } from './agent.ts';
import type { ChatMessage, ModelProvider, ModelResponse, ToolCall, ToolSchema } from './model-provider.ts';

export interface AgentRunRequest {
  readonly agent: Agent;
  readonly input: string;
  readonly context: unknown;
  readonly workflow: WorkflowContext;
  readonly provider: ModelProvider;
  readonly signal: AbortSignal;
  /** Validates and runs one tool call through the engine's executor; `callPath` extends the step path. */
  readonly runTool: (tool: Tool, args: unknown, callPath: string) => Promise<InvocationOutcome>;
}

export interface AgentUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly turns: number;
  readonly toolCalls: number;
}

export type AgentRunOutcome =
  | { readonly ok: true; readonly output: unknown; readonly usage: AgentUsage }
  | { readonly ok: false; readonly error: StepError; readonly usage: AgentUsage };

const anyObject = Object.freeze({ type: 'object' });

export async function runAgent(request: AgentRunRequest): Promise<AgentRunOutcome> {
  const { agent, provider, signal } = request;
  let promptTokens = 0;
  let completionTokens = 0;
  let turns = 0;
  let toolCalls = 0;
  const usage = (): AgentUsage => ({ promptTokens, completionTokens, turns, toolCalls });
  const fail = (error: StepError): AgentRunOutcome => ({ ok: false, error, usage: usage() });

  let system: string;
  try {
    system = await agent.systemPrompt({ agentName: agent.name, context: request.context, workflow: request.workflow });
  } catch (err) {
    return fail(stepError(ErrorCode.USER_FUNCTION_ERROR, `agent ${agent.name}: instructions threw: ${toStepError(err).message}`));
  }
  const messages: ChatMessage[] = [
    { role: 'system', content: system },
    { role: 'user', content: request.input },
  ];
  const tools: ToolSchema[] = agent.tools.map((t) => ({ name: t.name, description: t.description, parameters: t.parameters ?? anyObject }));

  while (turns < agent.maxTurns) {
    if (signal.aborted) return fail(abortError(signal));
    turns += 1;
    let response: ModelResponse;
    try {
      response = checkResponse(await provider.getCompletion({ agent, model: agent.model, messages: [...messages], tools, outputSchema: agent.outputSchema, signal }));
    } catch (err) {
      return fail(signal.aborted ? abortError(signal) : toStepError(err, ErrorCode.MODEL_ERROR));
    }
    if (signal.aborted) return fail(abortError(signal));
    promptTokens += response.usage?.promptTokens ?? 0;
    completionTokens += response.usage?.completionTokens ?? 0;
    const calls = response.message.toolCalls ?? [];
    if (calls.length === 0) return finalAnswer(agent, response.message.content ?? '', usage());

    messages.push({ role: 'assistant', content: response.message.content, toolCalls: calls });
    toolCalls += calls.length;
    const results = await Promise.all(calls.map((call, index) => runToolCall(request, call, `${turns}.${index}`)));
    if (signal.aborted) return fail(abortError(signal));
    results.forEach((content, index) => {
      const call = calls[index]!;
      messages.push({ role: 'tool', content, toolCallId: call.id, name: call.name });
    });
  }
  return fail(stepError(ErrorCode.MAX_TURNS_EXCEEDED, `agent ${agent.name} gave no final answer within ${agent.maxTurns} model calls`, { maxTurns: agent.maxTurns }));
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

function finalAnswer(agent: Agent, content: string, usage: AgentUsage): AgentRunOutcome {
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
async function runToolCall(request: AgentRunRequest, call: ToolCall, position: string): Promise<string> {
  const tool = request.agent.tool(call.name);
  if (tool === undefined) {
    return JSON.stringify({ status: 'error', code: 'TOOL_NOT_FOUND', message: `no tool named ${call.name}; available: ${request.agent.tools.map((t) => t.name).join(', ') || 'none'}` });
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
