import type { ErrorCode } from '../errors.ts';
import type { JsonSchema } from '../tools/tool.ts';
import type { Agent } from './agent.ts';

export interface ToolCall {
  readonly id: string;
  readonly name: string;
  /** JSON text as models send it (an already-parsed object is accepted too). */
  readonly arguments: string | Readonly<Record<string, unknown>>;
}

export type ChatMessage =
  | { readonly role: 'system'; readonly content: string }
  | { readonly role: 'user'; readonly content: string }
  | { readonly role: 'assistant'; readonly content: string | null; readonly toolCalls?: readonly ToolCall[] }
  | { readonly role: 'tool'; readonly content: string; readonly toolCallId: string; readonly name: string };

/** A tool as offered to the model: a JSON-Schema function. */
export interface ToolSchema {
  readonly name: string;
  readonly description: string;
  readonly parameters: JsonSchema;
}

/** Which model call of which step a request is: stable across runs of the same workflow (what a replay keys on). */
export interface ModelCall {
  readonly runId: string;
  /** The agent step's path. */
  readonly path: string;
  readonly attempt: number;
  /** The model call within the attempt, from 1 (across handoffs). */
  readonly turn: number;
}

export interface ModelRequest {
  readonly agent: Agent;
  readonly model: string | undefined;
  readonly messages: readonly ChatMessage[];
  readonly tools: readonly ToolSchema[];
  readonly outputSchema: JsonSchema | undefined;
  /** Aborted on the step's timeout or the run's cancellation: abort the request. */
  readonly signal: AbortSignal;
  /** Called with each piece of answer text as it streams in (streaming providers only). Must not throw. */
  readonly onDelta?: (text: string) => void;
  /** Which call this is, when an engine step makes it. */
  readonly call?: ModelCall;
}

export interface TokenUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export interface ModelResponse {
  readonly message: { readonly content: string | null; readonly toolCalls?: readonly ToolCall[] };
  readonly usage?: TokenUsage;
  /** The model that answered, when the provider chose it (the agent named none): for usage accounting. */
  readonly model?: string;
}

/**
 * What a provider throws to fail the step with a specific code. The agent loop keeps `code`, `retryable`
 * and `details` (e.g. `details.retryAfterMs`, which the step's retry policy honours).
 */
export class ModelError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>> | undefined;
  constructor(code: ErrorCode, message: string, options: { retryable: boolean; details?: Record<string, unknown>; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ModelError';
    this.code = code;
    this.retryable = options.retryable;
    this.details = options.details;
  }
}

/** How the engine reaches a model. Throw (or reject) to fail the step; set `retryable` on the error to steer retries. */
export interface ModelProvider {
  getCompletion(request: ModelRequest): Promise<ModelResponse>;
}

export type ScriptedReply = ModelResponse | ((request: ModelRequest) => ModelResponse | Promise<ModelResponse>);

/**
 * A provider that answers from a script, in order, and records every request. For tests and offline
 * demos: it never pretends to be a model, and it fails loudly when the script runs out.
 */
export class ScriptedModelProvider implements ModelProvider {
  readonly requests: ModelRequest[] = [];
  readonly #replies: ScriptedReply[];
  readonly #fallback: ScriptedReply | undefined;

  constructor(replies: readonly ScriptedReply[], options: { whenExhausted?: ScriptedReply } = {}) {
    this.#replies = [...replies];
    this.#fallback = options.whenExhausted;
  }

  get remaining(): number {
    return this.#replies.length;
  }

  async getCompletion(request: ModelRequest): Promise<ModelResponse> {
    this.requests.push(request);
    const reply = this.#replies.shift() ?? this.#fallback;
    if (reply === undefined) {
      throw new Error(`ScriptedModelProvider: no scripted reply left for request ${this.requests.length} (agent ${request.agent.name})`);
    }
    return typeof reply === 'function' ? reply(request) : reply;
  }
}

/** A reply with a final answer. */
export function textReply(content: string, usage?: TokenUsage): ModelResponse {
  return usage === undefined ? { message: { content } } : { message: { content }, usage };
}

/** A reply asking for tool calls. */
export function toolCallReply(calls: readonly { name: string; arguments: Record<string, unknown>; id?: string }[], usage?: TokenUsage): ModelResponse {
  const toolCalls = calls.map((c, i) => ({ id: c.id ?? `call_${i + 1}`, name: c.name, arguments: JSON.stringify(c.arguments) }));
  return usage === undefined ? { message: { content: null, toolCalls } } : { message: { content: null, toolCalls }, usage };
}
