/**
 * Handoffs as in JAF: an agent lists the agents it may hand the conversation to; the model gets one
 * `handoff` tool whose `agent_name` is one of them; calling it makes the target the active agent (its
 * instructions become the system prompt, its tools the offered tools) for the rest of the step.
 */
import { ErrorCode, stepError, type StepError } from '../errors.ts';
import { HANDOFF_TOOL_NAME, type Agent } from './agent.ts';
import type { ToolCall, ToolSchema } from './model-provider.ts';

/** Finds an agent by name (the engine's agent registry). */
export type AgentResolver = (name: string) => Agent | undefined;

/** Longest `message` a model may pass along with a handoff, in characters. */
const MAX_HANDOFF_MESSAGE_CHARS = 10_000;

/** The `handoff` tool offered to the model, or undefined when the agent has no handoffs. */
export function handoffToolSchema(agent: Agent): ToolSchema | undefined {
  const names = agent.handoffNames;
  if (names.length === 0) return undefined;
  return {
    name: HANDOFF_TOOL_NAME,
    description: `Hand the conversation over to another agent, which then answers the user. Available agents: ${names.join(', ')}.`,
    parameters: {
      type: 'object',
      properties: {
        agent_name: { type: 'string', enum: [...names], description: 'The agent to hand over to.' },
        message: { type: 'string', description: 'What the next agent should know about the request.' },
      },
      required: ['agent_name'],
      additionalProperties: false,
    },
  };
}

export function isHandoffCall(agent: Agent, call: ToolCall): boolean {
  return call.name === HANDOFF_TOOL_NAME && agent.handoffs.length > 0;
}

export type HandoffDecision =
  | { readonly ok: true; readonly target: Agent; readonly message: string }
  | { readonly ok: false; readonly error: StepError };

/**
 * Checks a handoff call and finds its target: it must be one of `from.handoffs` (otherwise the step
 * fails, as JAF's HandoffError ends the run), found as the Agent listed, through `resolve`, or among
 * the agents reachable from `start` through Agent objects in `handoffs` (so cycles can use names).
 */
export function decideHandoff(from: Agent, call: ToolCall, start: Agent, resolve: AgentResolver | undefined): HandoffDecision {
  const fail = (message: string, retryable: boolean): HandoffDecision => ({
    ok: false,
    error: stepError(ErrorCode.AGENT_HANDOFF_INVALID, `agent ${from.name}: ${message}`, { from: from.name, allowed: [...from.handoffNames] }, retryable),
  });
  const args = parseArgs(call.arguments);
  if (args === undefined) return fail(`the ${HANDOFF_TOOL_NAME} call's arguments are not a JSON object`, true);
  const name = args.agent_name;
  if (typeof name !== 'string' || !from.handoffNames.includes(name)) {
    return fail(`the model handed off to ${JSON.stringify(name)}, which is not one of its handoffs (${from.handoffNames.join(', ')})`, true);
  }
  const message = typeof args.message === 'string' ? args.message.slice(0, MAX_HANDOFF_MESSAGE_CHARS) : '';
  const listed = from.handoffs.find((h): h is Agent => typeof h !== 'string' && h.name === name);
  const target = listed ?? resolve?.(name) ?? reachableAgents(start).get(name);
  // A name nobody can resolve is a configuration problem: another attempt fails the same way.
  if (target === undefined) return fail(`no agent named ${name} is registered (register it with the engine or list the Agent in handoffs)`, false);
  return { ok: true, target, message };
}

/** The tool message the model reads after its handoff call (jaf-py's handoff tool result). */
export function handoffToolResult(target: Agent, message: string): string {
  return JSON.stringify({ handoff_to: target.name, message });
}

function parseArgs(raw: ToolCall['arguments']): Record<string, unknown> | undefined {
  let value: unknown = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch {
      return undefined;
    }
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** Every agent reachable from `start` through Agent objects (not names) in `handoffs`, by name. */
function reachableAgents(start: Agent): ReadonlyMap<string, Agent> {
  const found = new Map<string, Agent>([[start.name, start]]);
  const pending = [start];
  for (let agent = pending.pop(); agent !== undefined; agent = pending.pop()) {
    for (const h of agent.handoffs) {
      if (typeof h !== 'string' && !found.has(h.name)) {
        found.set(h.name, h);
        pending.push(h);
      }
    }
  }
  return found;
}
