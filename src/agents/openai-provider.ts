/**
 * A ModelProvider for any endpoint speaking OpenAI's Chat Completions API (OpenAI, Azure-style proxies,
 * vLLM, Ollama, LiteLLM...), on the official `openai` SDK. The SDK's own retries are off: the step's
 * retry policy owns retries, and every failure becomes a ModelError with a code saying whether (and
 * when, for 429) another attempt can help.
 */
import OpenAI from 'openai';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import { ErrorCode } from '../errors.ts';
import { ModelError, type ChatMessage, type ModelProvider, type ModelRequest, type ModelResponse, type ToolCall } from './model-provider.ts';

export interface OpenAIModelProviderOptions {
  /** Endpoint root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`. Default: env OPENAI_BASE_URL, else OpenAI's. */
  readonly baseURL?: string;
  /** Bearer token. Default: env OPENAI_API_KEY. Local servers that check none still need some value. */
  readonly apiKey?: string;
  /** Model for agents that name none. Default: env JAF_MODEL. An agent's `model` overrides it. */
  readonly model?: string;
  /** OpenAI organization header. Default: env OPENAI_ORG_ID (read by the SDK). */
  readonly organization?: string;
  /** Per-request HTTP timeout in ms, beside the step's timeout (default 600,000; at most 86,400,000). */
  readonly timeoutMs?: number;
  readonly defaultHeaders?: Readonly<Record<string, string>>;
  /** Stream answers over SSE, reporting text through `ModelRequest.onDelta` (default false). */
  readonly stream?: boolean;
  /** Ask for strict JSON-Schema output (the schema must then follow OpenAI's strict-mode rules). Default false. */
  readonly strictOutputSchema?: boolean;
  /** Which body field carries an agent's `maxTokens` (newer OpenAI models want `max_completion_tokens`). Default `max_tokens`. */
  readonly maxTokensParameter?: 'max_tokens' | 'max_completion_tokens';
  /** Instead of the environment (tests). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Environment variables read when an option is absent. */
export const OPENAI_PROVIDER_ENV = Object.freeze({ baseURL: 'OPENAI_BASE_URL', apiKey: 'OPENAI_API_KEY', model: 'JAF_MODEL' });

const DEFAULT_TIMEOUT_MS = 600_000;
const MAX_TIMEOUT_MS = 86_400_000;
/** Tool calls one streamed message may carry; a higher index is a malformed stream, not a plan. */
const MAX_STREAMED_TOOL_CALLS = 128;

export class OpenAIModelProvider implements ModelProvider {
  readonly #client: OpenAI;
  readonly #model: string | undefined;
  readonly #stream: boolean;
  readonly #strict: boolean;
  readonly #maxTokensParameter: 'max_tokens' | 'max_completion_tokens';
  readonly #timeoutMs: number;

  constructor(options: OpenAIModelProviderOptions = {}) {
    const env = options.env ?? process.env;
    const apiKey = options.apiKey ?? nonEmpty(env[OPENAI_PROVIDER_ENV.apiKey]);
    if (typeof apiKey !== 'string' || apiKey === '') {
      throw new TypeError(`OpenAIModelProvider: apiKey is required (pass options.apiKey or set ${OPENAI_PROVIDER_ENV.apiKey})`);
    }
    const baseURL = options.baseURL ?? nonEmpty(env[OPENAI_PROVIDER_ENV.baseURL]);
    if (baseURL !== undefined && !URL.canParse(baseURL)) throw new TypeError(`OpenAIModelProvider: baseURL ${JSON.stringify(baseURL)} is not a URL`);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
      throw new TypeError(`OpenAIModelProvider: timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS}`);
    }
    const model = options.model ?? nonEmpty(env[OPENAI_PROVIDER_ENV.model]);
    if (model !== undefined && (typeof model !== 'string' || model === '')) throw new TypeError('OpenAIModelProvider: model must be a non-empty string');
    this.#model = model;
    this.#stream = options.stream ?? false;
    this.#strict = options.strictOutputSchema ?? false;
    this.#maxTokensParameter = options.maxTokensParameter ?? 'max_tokens';
    this.#timeoutMs = timeoutMs;
    this.#client = new OpenAI({
      apiKey,
      // Explicit, so the SDK does not fall back to OPENAI_BASE_URL when `env` was given instead.
      baseURL: baseURL ?? 'https://api.openai.com/v1',
      ...(options.organization === undefined ? {} : { organization: options.organization }),
      timeout: timeoutMs,
      maxRetries: 0, // the step's retry policy owns retries
      ...(options.defaultHeaders === undefined ? {} : { defaultHeaders: { ...options.defaultHeaders } }),
      logLevel: 'off',
    });
  }

  /** The model used for an agent that names none (undefined: every agent must name one). */
  get defaultModel(): string | undefined {
    return this.#model;
  }

  async getCompletion(request: ModelRequest): Promise<ModelResponse> {
    const model = request.model ?? this.#model;
    if (model === undefined) {
      throw new ModelError(
        ErrorCode.MODEL_INVALID_REQUEST,
        `agent ${request.agent.name}: no model (set the agent's model, the provider's model option or ${OPENAI_PROVIDER_ENV.model})`,
        { retryable: false },
      );
    }
    const body = this.#body(request, model);
    const options = { signal: request.signal, maxRetries: 0, timeout: this.#timeoutMs };
    try {
      if (!this.#stream) return { ...fromCompletion(await this.#client.chat.completions.create(body satisfies ChatCompletionCreateParamsNonStreaming, options)), model };
      const stream = await this.#client.chat.completions.create(
        { ...body, stream: true, stream_options: { include_usage: true } } satisfies ChatCompletionCreateParamsStreaming,
        options,
      );
      return { ...(await accumulate(stream, request.onDelta)), model };
    } catch (err) {
      throw toModelError(err, model);
    }
  }

  #body(request: ModelRequest, model: string): Omit<ChatCompletionCreateParamsNonStreaming, 'stream'> {
    const { agent } = request;
    return {
      model,
      messages: request.messages.map(toWireMessage),
      ...(request.tools.length === 0
        ? {}
        : { tools: request.tools.map((t) => ({ type: 'function' as const, function: { name: t.name, description: t.description, parameters: { ...t.parameters } } })) }),
      ...(request.outputSchema === undefined
        ? {}
        : { response_format: { type: 'json_schema' as const, json_schema: { name: schemaName(agent.name), schema: { ...request.outputSchema }, strict: this.#strict } } }),
      ...(agent.temperature === undefined ? {} : { temperature: agent.temperature }),
      ...(agent.maxTokens === undefined ? {} : { [this.#maxTokensParameter]: agent.maxTokens }),
    };
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** response_format names allow [a-zA-Z0-9_-]{1,64}. */
function schemaName(agentName: string): string {
  return agentName.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, 64) || 'output';
}

function toWireMessage(message: ChatMessage): ChatCompletionMessageParam {
  switch (message.role) {
    case 'system':
    case 'user':
      return { role: message.role, content: message.content };
    case 'assistant':
      return message.toolCalls === undefined || message.toolCalls.length === 0
        ? { role: 'assistant', content: message.content }
        : {
            role: 'assistant',
            content: message.content,
            tool_calls: message.toolCalls.map((c) => ({
              id: c.id,
              type: 'function' as const,
              function: { name: c.name, arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments) },
            })),
          };
    case 'tool':
      return { role: 'tool', content: message.content, tool_call_id: message.toolCallId };
  }
}

function invalidResponse(model: string, what: string): ModelError {
  return new ModelError(ErrorCode.MODEL_RESPONSE_INVALID, `model ${model}: the response is not a chat completion: ${what}`, { retryable: true });
}

/** A non-streamed completion, checked: the SDK returns whatever the body was (even text). */
function fromCompletion(completion: ChatCompletion): ModelResponse {
  // A body served as text/plain arrives here as a string.
  const choices = typeof completion === 'object' && completion !== null ? (completion as Partial<ChatCompletion>).choices : undefined;
  if (!Array.isArray(choices)) throw new ResponseShapeError('no choices array');
  const message = choices[0]?.message;
  if (typeof message !== 'object' || message === null) throw new ResponseShapeError('choices[0] has no message');
  if (message.content !== null && message.content !== undefined && typeof message.content !== 'string') throw new ResponseShapeError('message content is not a string');
  const toolCalls: ToolCall[] = [];
  for (const [index, call] of (message.tool_calls ?? []).entries()) {
    if (call?.type !== 'function' || typeof call.function?.name !== 'string') throw new ResponseShapeError(`tool_calls[${index}] is not a function call`);
    toolCalls.push({ id: typeof call.id === 'string' && call.id !== '' ? call.id : `call_${index + 1}`, name: call.function.name, arguments: call.function.arguments ?? '' });
  }
  return withUsage({ content: message.content ?? null, toolCalls }, completion.usage);
}

/** Accumulates a streamed completion: content deltas (reported through onDelta) and tool-call argument fragments by index. */
async function accumulate(stream: AsyncIterable<ChatCompletionChunk>, onDelta: ((text: string) => void) | undefined): Promise<ModelResponse> {
  let content = '';
  let sawContent = false;
  const calls: { id: string; name: string; arguments: string }[] = [];
  let usage: ChatCompletionChunk['usage'];
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const delta = chunk.choices?.[0]?.delta;
    if (delta === undefined || delta === null) continue;
    if (typeof delta.content === 'string' && delta.content !== '') {
      sawContent = true;
      content += delta.content;
      onDelta?.(delta.content);
    }
    for (const fragment of delta.tool_calls ?? []) {
      const index = fragment.index;
      if (!Number.isInteger(index) || index < 0 || index >= MAX_STREAMED_TOOL_CALLS) throw new ResponseShapeError(`streamed tool call index ${index} is outside 0..${MAX_STREAMED_TOOL_CALLS - 1}`);
      const call = (calls[index] ??= { id: '', name: '', arguments: '' });
      if (fragment.id) call.id = fragment.id;
      if (fragment.function?.name) call.name += fragment.function.name;
      if (fragment.function?.arguments) call.arguments += fragment.function.arguments;
    }
  }
  const toolCalls: ToolCall[] = [];
  for (const [index, call] of calls.entries()) {
    if (call === undefined) continue; // an index the stream skipped
    if (call.name === '') throw new ResponseShapeError(`streamed tool call ${index} has no function name`);
    toolCalls.push({ id: call.id || `call_${index + 1}`, name: call.name, arguments: call.arguments });
  }
  return withUsage({ content: sawContent ? content : null, toolCalls }, usage);
}

function withUsage(message: { content: string | null; toolCalls: ToolCall[] }, usage: ChatCompletion['usage'] | null | undefined): ModelResponse {
  const msg = message.toolCalls.length === 0 ? { content: message.content } : message;
  return usage ? { message: msg, usage: { promptTokens: usage.prompt_tokens ?? 0, completionTokens: usage.completion_tokens ?? 0 } } : { message: msg };
}

/** A body that parsed but is not a chat completion; converted to MODEL_RESPONSE_INVALID with the model's name. */
class ResponseShapeError extends Error {}

/**
 * Maps whatever the SDK threw to a ModelError. 429 carries `details.retryAfterMs`; 401/403, context
 * length and other 4xx are final; 5xx, 408, 409 and connection failures are transient.
 */
export function toModelError(err: unknown, model: string): ModelError {
  if (err instanceof ModelError) return err;
  if (err instanceof ResponseShapeError) return invalidResponse(model, err.message);
  if (err instanceof SyntaxError) return invalidResponse(model, `malformed JSON (${err.message})`);
  if (err instanceof OpenAI.APIUserAbortError) return new ModelError(ErrorCode.CANCELLED, `model ${model}: request aborted`, { retryable: false, cause: err });
  if (err instanceof OpenAI.APIConnectionTimeoutError) return new ModelError(ErrorCode.MODEL_UNAVAILABLE, `model ${model}: request timed out`, { retryable: true, cause: err });
  if (err instanceof OpenAI.APIConnectionError) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return new ModelError(ErrorCode.MODEL_UNAVAILABLE, `model ${model}: connection failed${cause}`, { retryable: true, cause: err });
  }
  if (err instanceof OpenAI.APIError) return fromApiError(err, model);
  const message = err instanceof Error ? err.message : String(err);
  return new ModelError(ErrorCode.MODEL_ERROR, `model ${model}: ${message}`, { retryable: true, cause: err });
}

function fromApiError(err: InstanceType<typeof OpenAI.APIError>, model: string): ModelError {
  const status = err.status;
  const code = typeof err.code === 'string' ? err.code : undefined;
  const details: Record<string, unknown> = { ...(status === undefined ? {} : { httpStatus: status }), ...(code === undefined ? {} : { providerCode: code }) };
  const say = (text: string) => `model ${model}: ${text}${err.message ? ` (${err.message})` : ''}`;
  if (isContextLengthError(err)) return new ModelError(ErrorCode.MODEL_CONTEXT_LENGTH_EXCEEDED, say('the conversation exceeds the context window'), { retryable: false, details, cause: err });
  if (status === 429) {
    // insufficient_quota is a billing state, not a burst: waiting does not help.
    if (code === 'insufficient_quota') return new ModelError(ErrorCode.MODEL_RATE_LIMITED, say('quota exhausted'), { retryable: false, details, cause: err });
    const retryAfterMs = parseRetryAfter(err.headers);
    return new ModelError(ErrorCode.MODEL_RATE_LIMITED, say('rate limited'), { retryable: true, details: retryAfterMs === undefined ? details : { ...details, retryAfterMs }, cause: err });
  }
  if (status === 401 || status === 403) return new ModelError(ErrorCode.MODEL_AUTH_FAILED, say(`the endpoint refused the credentials (HTTP ${status})`), { retryable: false, details, cause: err });
  // No status: an error event inside an SSE stream, which servers send for their own failures.
  if (status === undefined || status >= 500 || status === 408 || status === 409) {
    return new ModelError(ErrorCode.MODEL_UNAVAILABLE, say(status === undefined ? 'the stream reported an error' : `HTTP ${status}`), { retryable: true, details, cause: err });
  }
  return new ModelError(ErrorCode.MODEL_INVALID_REQUEST, say(`the endpoint rejected the request (HTTP ${status})`), { retryable: false, details, cause: err });
}

/** OpenAI says `code: context_length_exceeded`; vLLM and others only say it in the message. */
function isContextLengthError(err: InstanceType<typeof OpenAI.APIError>): boolean {
  if (err.code === 'context_length_exceeded') return true;
  return (err.status === 400 || err.status === 413 || err.status === undefined) && /context length|context window|maximum context|too many tokens/i.test(err.message);
}

/**
 * Milliseconds a 429 asks to wait: `retry-after-ms` (OpenAI's), else `retry-after` as seconds or an
 * HTTP date. Undefined when absent or unreadable.
 */
export function parseRetryAfter(headers: Headers | undefined, now: number = Date.now()): number | undefined {
  const ms = headers?.get('retry-after-ms');
  if (ms !== null && ms !== undefined && ms.trim() !== '') {
    const value = Number(ms);
    if (Number.isFinite(value) && value >= 0) return Math.ceil(value);
  }
  const after = headers?.get('retry-after')?.trim();
  if (after === undefined || after === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(after)) return Math.ceil(Number(after) * 1000);
  // An HTTP date names a weekday and a month; anything else (a negative number, junk) is unreadable.
  const date = /[a-z]/i.test(after) ? Date.parse(after) : Number.NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
