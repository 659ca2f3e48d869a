/**
 * A real HTTP server speaking OpenAI's Chat Completions API (POST /v1/chat/completions, plain JSON and
 * SSE when the request says `stream: true`), answering from a per-test script and recording every
 * request. On 127.0.0.1, port 0. `close()` never hangs: it drops open connections and pending delays.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface WireToolCall {
  readonly id: string;
  readonly name: string;
  /** Sent as JSON text (an object is stringified). */
  readonly arguments: string | Record<string, unknown>;
}

export interface WireUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
}

/** What one request gets. Every kind may wait `delayMs` before answering. */
export type ScriptedReply =
  /** An assistant message: a chat.completion, or SSE chunks if the request streams. */
  | { readonly kind: 'message'; readonly content?: string | null; readonly toolCalls?: readonly WireToolCall[]; readonly usage?: WireUsage; readonly delayMs?: number }
  /** Any status and JSON body (errors: `{ error: { message, type, code } }`). */
  | { readonly kind: 'json'; readonly status: number; readonly body: unknown; readonly headers?: Readonly<Record<string, string>>; readonly delayMs?: number }
  /** Bytes as given, e.g. malformed JSON under `content-type: application/json`. */
  | { readonly kind: 'raw'; readonly status: number; readonly text: string; readonly contentType: string; readonly delayMs?: number }
  /** SSE frames as given: objects become `data: {json}`, strings are sent as the data line verbatim; then `data: [DONE]` unless `done: false`. */
  | { readonly kind: 'sse'; readonly frames: readonly (object | string)[]; readonly done?: boolean; readonly delayMs?: number };

export type ScriptStep = ScriptedReply | ((request: RecordedRequest) => ScriptedReply);

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The parsed JSON body (undefined if it did not parse). */
  readonly body: ChatRequestBody | undefined;
  readonly receivedAt: number;
  /** True once the client closed the connection before the reply was complete. */
  readonly abortedByClient: boolean;
  /** Resolves when the client closes the connection before the reply was complete (never, if it does not). */
  readonly aborted: Promise<void>;
}

export interface ChatRequestBody {
  readonly model: string;
  readonly messages: readonly { role: string; content: string | null; tool_calls?: { id: string; function: { name: string; arguments: string } }[]; tool_call_id?: string }[];
  readonly tools?: readonly { type: string; function: { name: string; description?: string; parameters?: unknown } }[];
  readonly response_format?: { type: string; json_schema?: { name: string; schema: unknown; strict?: boolean } };
  readonly stream?: boolean;
  readonly stream_options?: { include_usage?: boolean };
  readonly temperature?: number;
  readonly max_tokens?: number;
  readonly [key: string]: unknown;
}

/** Largest request body accepted, in bytes. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

export class ChatCompletionsServer {
  readonly requests: RecordedRequest[] = [];
  /** Requests that found the script empty (answered 500 so the test sees them fail). */
  unscripted = 0;
  readonly #server: Server;
  readonly #script: ScriptStep[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #baseURL = '';

  private constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  static async start(script: readonly ScriptStep[] = []): Promise<ChatCompletionsServer> {
    const server = new ChatCompletionsServer();
    server.script(...script);
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', reject);
      server.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.#server.address() as AddressInfo;
    server.#baseURL = `http://127.0.0.1:${port}/v1`;
    return server;
  }

  /** For the provider's `baseURL`. */
  get baseURL(): string {
    return this.#baseURL;
  }

  /** Appends replies, answered in order. */
  script(...steps: ScriptStep[]): this {
    this.#script.push(...steps);
    return this;
  }

  get remaining(): number {
    return this.#script.length;
  }

  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let finished = false;
    let markAborted!: () => void;
    const aborted = new Promise<void>((resolve) => (markAborted = resolve));
    const record = { method: req.method ?? '', path: req.url ?? '', headers: { ...req.headers }, body: undefined as ChatRequestBody | undefined, receivedAt: Date.now(), abortedByClient: false, aborted };
    res.on('close', () => {
      if (!finished && !res.writableFinished) {
        record.abortedByClient = true;
        markAborted();
      }
    });
    const text = await readBody(req).catch(() => undefined);
    try {
      record.body = text === undefined ? undefined : (JSON.parse(text) as ChatRequestBody);
    } catch {
      record.body = undefined;
    }
    this.requests.push(record);
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      return this.#finish(res, () => sendJson(res, 404, { error: { message: `no route ${req.method} ${req.url}`, type: 'invalid_request_error', code: null } }), () => (finished = true));
    }
    const step = this.#script.shift();
    if (step === undefined) {
      this.unscripted += 1;
      return this.#finish(res, () => sendJson(res, 500, { error: { message: 'chat-completions-server: no scripted reply left', type: 'server_error', code: null } }), () => (finished = true));
    }
    const reply = typeof step === 'function' ? step(record) : step;
    if (reply.delayMs !== undefined && reply.delayMs > 0) await this.#sleep(reply.delayMs);
    if (res.destroyed) return;
    this.#finish(res, () => this.#send(res, reply, record.body), () => (finished = true));
  }

  #finish(res: ServerResponse, send: () => void, done: () => void): void {
    res.once('finish', done);
    send();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
    });
  }

  #send(res: ServerResponse, reply: ScriptedReply, body: ChatRequestBody | undefined): void {
    switch (reply.kind) {
      case 'message':
        if (body?.stream === true) return sendSse(res, messageChunks(reply, body), true);
        return sendJson(res, 200, completion(reply, body?.model ?? 'unknown'));
      case 'json':
        return sendJson(res, reply.status, reply.body, reply.headers);
      case 'raw':
        res.writeHead(reply.status, { 'content-type': reply.contentType });
        res.end(reply.text);
        return;
      case 'sse':
        return sendSse(res, reply.frames, reply.done ?? true);
    }
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`request body over ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendSse(res: ServerResponse, frames: readonly (object | string)[], done: boolean): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  for (const frame of frames) res.write(`data: ${typeof frame === 'string' ? frame : JSON.stringify(frame)}\n\n`);
  if (done) res.write('data: [DONE]\n\n');
  res.end();
}

const wireCalls = (calls: readonly WireToolCall[]) =>
  calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments) } }));

function completion(reply: Extract<ScriptedReply, { kind: 'message' }>, model: string): object {
  const calls = reply.toolCalls ?? [];
  const usage = reply.usage ?? { prompt_tokens: 10, completion_tokens: 5 };
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: 1_700_000_000,
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: reply.content ?? null, ...(calls.length === 0 ? {} : { tool_calls: wireCalls(calls) }) },
        finish_reason: calls.length === 0 ? 'stop' : 'tool_calls',
      },
    ],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
  };
}

/**
 * A message as a real server streams it: content in word-sized pieces, each tool call's id and name
 * first and its arguments in two fragments, then finish_reason, then usage if asked for.
 */
function messageChunks(reply: Extract<ScriptedReply, { kind: 'message' }>, body: ChatRequestBody): object[] {
  const base = { id: 'chatcmpl-test', object: 'chat.completion.chunk', created: 1_700_000_000, model: body.model };
  const chunk = (delta: object, finish: string | null = null) => ({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] });
  const chunks: object[] = [chunk({ role: 'assistant', content: '' })];
  for (const piece of (reply.content ?? '').match(/\S+\s*|\s+/g) ?? []) chunks.push(chunk({ content: piece }));
  for (const [index, call] of wireCalls(reply.toolCalls ?? []).entries()) {
    chunks.push(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] }));
    const args = call.function.arguments;
    const half = Math.ceil(args.length / 2);
    for (const part of [args.slice(0, half), args.slice(half)]) if (part !== '') chunks.push(chunk({ tool_calls: [{ index, function: { arguments: part } }] }));
  }
  chunks.push(chunk({}, (reply.toolCalls ?? []).length === 0 ? 'stop' : 'tool_calls'));
  if (body.stream_options?.include_usage === true) {
    const usage = reply.usage ?? { prompt_tokens: 10, completion_tokens: 5 };
    chunks.push({ ...base, choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } });
  }
  return chunks;
}

// --- script helpers ---

export const answer = (content: string, usage?: WireUsage): ScriptedReply => ({ kind: 'message', content, ...(usage === undefined ? {} : { usage }) });

export const callTools = (...calls: WireToolCall[]): ScriptedReply => ({ kind: 'message', content: null, toolCalls: calls });

export const apiError = (status: number, message: string, options: { type?: string; code?: string | null; headers?: Record<string, string> } = {}): ScriptedReply => ({
  kind: 'json',
  status,
  body: { error: { message, type: options.type ?? 'invalid_request_error', param: null, code: options.code ?? null } },
  ...(options.headers === undefined ? {} : { headers: options.headers }),
});

/** The system prompt of a recorded request. */
export function systemPrompt(request: RecordedRequest): string {
  return request.body?.messages.find((m) => m.role === 'system')?.content ?? '';
}
