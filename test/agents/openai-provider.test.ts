/**
 * OpenAIModelProvider against a real local Chat Completions server, through a real WorkflowEngine
 * running AgentSteps: tool calls (pool and inline, parallel), structured output, handoffs, streaming,
 * and every failure the issue lists with its code, retryability and attempts.
 */
import { describe, expect, it } from 'vitest';
import { Agent, AgentStep, ErrorCode, OpenAIModelProvider, RecordingClock, Tool, type ModelRequest, type RunEvent } from 'jaf-workflows';
import { answer, apiError, callTools } from '../support/chat-completions-server.ts';
import { closeAfterEach, engineWith, providerFor, quickRetry, runStep, startServer, within } from './support.ts';

closeAfterEach();

const square = new Tool({
  name: 'square',
  description: 'Squares a number (on the worker pool)',
  parameters: { type: 'object', properties: { n: { type: 'number' }, busyMs: { type: 'number' } }, required: ['n'] },
  module: new URL('../fixtures/tools/slow-square.ts', import.meta.url),
});

const mathAgent = new Agent({ name: 'math', instructions: 'You do arithmetic with your tools.', tools: [square], maxTurns: 4, temperature: 0.2, maxTokens: 200 });

const retryingStep = (agent: Agent, attempts = 3) => new AgentStep('ask', agent, 'What is 7 squared?').withRetry(quickRetry(attempts));

function retries(events: readonly RunEvent[]) {
  return events.filter((e): e is Extract<RunEvent, { type: 'step_retrying' }> => e.type === 'step_retrying');
}

describe('OpenAIModelProvider: requests and answers', () => {
  it('a tool call running a pool (module) tool, then the final answer; tools go out as JSON-Schema functions', async () => {
    const server = await startServer(
      callTools({ id: 'call_a', name: 'square', arguments: { n: 7 } }),
      answer('7 squared is 49.', { prompt_tokens: 30, completion_tokens: 6 }),
    );
    const engine = engineWith({ modelProvider: providerFor(server) });
    const { result, step } = await runStep(engine, retryingStep(mathAgent));

    expect(result.status).toBe('completed');
    expect(step).toMatchObject({ status: 'completed', attempts: 1, output: '7 squared is 49.' });
    expect(step.metadata.usage).toEqual({ promptTokens: 40, completionTokens: 11, turns: 2, toolCalls: 1 });
    expect(server.requests).toHaveLength(2);
    const [first, second] = server.requests.map((r) => r.body!);
    expect(server.requests[0]!.headers.authorization).toBe('Bearer test-key');
    expect(first).toMatchObject({ model: 'test-model', temperature: 0.2, max_tokens: 200 });
    expect(first!.stream).toBeUndefined(); // plain JSON unless the provider streams
    expect(first!.tools).toEqual([{ type: 'function', function: { name: 'square', description: 'Squares a number (on the worker pool)', parameters: square.parameters } }]);
    expect(first!.messages).toEqual([
      { role: 'system', content: 'You do arithmetic with your tools.' },
      { role: 'user', content: 'What is 7 squared?' },
    ]);
    // The second request carries the assistant's tool call and the pool tool's result.
    expect(second!.messages[2]).toEqual({ role: 'assistant', content: null, tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'square', arguments: '{"n":7}' } }] });
    const toolMessage = second!.messages[3]!;
    expect(toolMessage).toMatchObject({ role: 'tool', tool_call_id: 'call_a' });
    expect(JSON.parse(toolMessage.content!)).toMatchObject({ status: 'executed', result: { square: 49 } });
    // The pool tool's own step ran under the agent step.
    expect(step.children.map((c) => [c.stepId, c.status])).toEqual([['1.1.0:square', 'completed']]);
  });

  it('parallel tool calls run concurrently through the executor; results go back in call order', async () => {
    const started: string[] = [];
    let release!: () => void;
    const bothStarted = new Promise<void>((resolve) => (release = resolve));
    // Each call waits until the other has started: sequential execution would never get past the first.
    const rendezvous = new Tool({
      name: 'rendezvous',
      parameters: { type: 'object', properties: { who: { type: 'string' } }, required: ['who'] },
      execute: async (args: { who: string }) => {
        started.push(args.who);
        if (started.length === 2) release();
        await within(bothStarted, 5_000, `call ${args.who} waiting for its sibling`);
        return { who: args.who };
      },
    });
    const agent = new Agent({ name: 'pair', instructions: 'Meet.', tools: [rendezvous, square] });
    const server = await startServer(
      callTools(
        { id: 'c1', name: 'rendezvous', arguments: { who: 'left' } },
        { id: 'c2', name: 'rendezvous', arguments: { who: 'right' } },
        { id: 'c3', name: 'square', arguments: { n: 3 } },
      ),
      answer('met'),
    );
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server) }), new AgentStep('meet', agent, 'go'));

    expect(step).toMatchObject({ status: 'completed', output: 'met' });
    expect(started.sort()).toEqual(['left', 'right']);
    const toolMessages = server.requests[1]!.body!.messages.filter((m) => m.role === 'tool');
    expect(toolMessages.map((m) => m.tool_call_id)).toEqual(['c1', 'c2', 'c3']);
    expect(toolMessages.map((m) => JSON.parse(m.content!).result)).toEqual([{ who: 'left' }, { who: 'right' }, expect.objectContaining({ square: 9 })]);
  });

  it('structured output: the agent outputSchema is sent as response_format json_schema and the answer is validated', async () => {
    const agent = new Agent({
      name: 'order summary',
      instructions: 'Summarise.',
      outputSchema: { type: 'object', properties: { total: { type: 'number' } }, required: ['total'] },
    });
    const server = await startServer(answer('{"total": 12.5}'), answer('{"total": "twelve"}'));
    const engine = engineWith({ modelProvider: providerFor(server, { strictOutputSchema: true }) });

    const good = await runStep(engine, new AgentStep('sum', agent, 'sum it'));
    expect(good.step).toMatchObject({ status: 'completed', output: { total: 12.5 } });
    expect(server.requests[0]!.body!.response_format).toEqual({
      type: 'json_schema',
      json_schema: { name: 'order_summary', schema: agent.outputSchema, strict: true },
    });

    const bad = await runStep(engine, new AgentStep('sum', agent, 'sum it'));
    expect(bad.step.error).toMatchObject({ code: ErrorCode.AGENT_OUTPUT_INVALID });
  });

  it('the model comes from the agent, else the provider option, else JAF_MODEL; base URL and key from the environment', async () => {
    const server = await startServer(answer('a'), answer('b'), answer('c'));
    const env = { OPENAI_BASE_URL: server.baseURL, OPENAI_API_KEY: 'env-key', JAF_MODEL: 'env-model' };
    const fromEnv = new OpenAIModelProvider({ env });
    const plain = new Agent({ name: 'plain', instructions: 'hi' });
    const pinned = new Agent({ name: 'pinned', instructions: 'hi', model: 'agent-model' });

    await runStep(engineWith({ modelProvider: fromEnv }), new AgentStep('s', plain, 'x'));
    await runStep(engineWith({ modelProvider: fromEnv }), new AgentStep('s', pinned, 'x'));
    await runStep(engineWith({ modelProvider: new OpenAIModelProvider({ env, model: 'option-model' }) }), new AgentStep('s', plain, 'x'));

    expect(server.requests.map((r) => r.body!.model)).toEqual(['env-model', 'agent-model', 'option-model']);
    expect(server.requests.every((r) => r.headers.authorization === 'Bearer env-key')).toBe(true);
    expect(fromEnv.defaultModel).toBe('env-model');
  });

  it('refuses to start without an API key or with a bad option, naming it', () => {
    expect(() => new OpenAIModelProvider({ env: {} })).toThrow(/apiKey is required.*OPENAI_API_KEY/);
    expect(() => new OpenAIModelProvider({ env: {}, apiKey: 'k', baseURL: 'not a url' })).toThrow(/baseURL/);
    expect(() => new OpenAIModelProvider({ env: {}, apiKey: 'k', timeoutMs: 0 })).toThrow(/timeoutMs must be an integer from 1/);
  });

  it('no model anywhere: MODEL_INVALID_REQUEST, not retried, no HTTP request', async () => {
    const server = await startServer();
    const provider = new OpenAIModelProvider({ baseURL: server.baseURL, apiKey: 'k', env: {} });
    const { step } = await runStep(engineWith({ modelProvider: provider }), retryingStep(new Agent({ name: 'nomodel', instructions: 'x' })));
    expect(step).toMatchObject({ status: 'failed', attempts: 1 });
    expect(step.error).toMatchObject({ code: ErrorCode.MODEL_INVALID_REQUEST, retryable: false });
    expect(step.error!.message).toContain('JAF_MODEL');
    expect(server.requests).toHaveLength(0);
  });
});

describe('OpenAIModelProvider: streaming (SSE)', () => {
  it('accumulates content and tool-call argument fragments; deltas reach onDelta; usage from the last chunk', async () => {
    const server = await startServer(
      callTools({ id: 'call_s', name: 'square', arguments: { n: 12 } }),
      answer('12 squared is 144.', { prompt_tokens: 50, completion_tokens: 9 }),
    );
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server, { stream: true }) }), new AgentStep('ask', mathAgent, 'What is 12 squared?'));

    expect(step).toMatchObject({ status: 'completed', output: '12 squared is 144.' });
    expect(step.metadata.usage).toMatchObject({ promptTokens: 60, completionTokens: 14, turns: 2, toolCalls: 1 });
    expect(server.requests[0]!.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    const toolMessage = server.requests[1]!.body!.messages.find((m) => m.role === 'tool')!;
    expect(JSON.parse(toolMessage.content!)).toMatchObject({ status: 'executed', result: { square: 144 } });

    // onDelta, straight through the provider: every piece, in order.
    server.script(answer('one two three'));
    const deltas: string[] = [];
    const response = await providerFor(server, { stream: true }).getCompletion(modelRequest(mathAgent, { onDelta: (text) => deltas.push(text) }));
    expect(response.message.content).toBe('one two three');
    expect(deltas).toEqual(['one ', 'two ', 'three']);
  });

  it('an error event inside the stream is MODEL_UNAVAILABLE; a malformed frame is MODEL_RESPONSE_INVALID', async () => {
    const server = await startServer(
      { kind: 'sse', frames: [{ error: { message: 'overloaded', type: 'server_error', code: null } }], done: false },
      { kind: 'sse', frames: ['{"choices": [{"delta": {"content": "hal'], done: false },
    );
    const provider = providerFor(server, { stream: true });
    await expect(provider.getCompletion(modelRequest(mathAgent))).rejects.toMatchObject({ code: ErrorCode.MODEL_UNAVAILABLE, retryable: true });
    await expect(provider.getCompletion(modelRequest(mathAgent))).rejects.toMatchObject({ code: ErrorCode.MODEL_RESPONSE_INVALID, retryable: true });
  });
});

describe('OpenAIModelProvider: failures, retries and timeouts', () => {
  it('429 with Retry-After: 1 is retried after at least 1 s (not the 1 ms backoff)', async () => {
    const server = await startServer(apiError(429, 'Rate limit reached', { type: 'requests', code: 'rate_limit_exceeded', headers: { 'retry-after': '1' } }), answer('49'));
    const { step, events } = await runStep(engineWith({ modelProvider: providerFor(server) }), retryingStep(mathAgent));

    expect(step).toMatchObject({ status: 'completed', attempts: 2, output: '49' });
    const [retry] = retries(events);
    expect(retry!.error).toMatchObject({ code: ErrorCode.MODEL_RATE_LIMITED, retryable: true, details: { retryAfterMs: 1000, httpStatus: 429 } });
    expect(retry!.delayMs).toBe(1000);
    expect(server.requests[1]!.receivedAt - server.requests[0]!.receivedAt).toBeGreaterThanOrEqual(1000);
  });

  it('429 with retry-after-ms: 50 waits at least 50 ms; the recorded delay is exactly the header', async () => {
    const server = await startServer(apiError(429, 'slow down', { headers: { 'retry-after-ms': '50', 'retry-after': '7' } }), answer('49'));
    const clock = new RecordingClock();
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server), clock }), retryingStep(mathAgent));
    expect(step).toMatchObject({ status: 'completed', attempts: 2 });
    // retry-after-ms wins over retry-after; the backoff (at most 2 ms) is smaller.
    expect(clock.sleeps).toEqual([50]);

    const real = await startServer(apiError(429, 'slow down', { headers: { 'retry-after-ms': '50' } }), answer('49'));
    const again = await runStep(engineWith({ modelProvider: providerFor(real) }), retryingStep(mathAgent));
    expect(again.step).toMatchObject({ status: 'completed', attempts: 2 });
    expect(real.requests[1]!.receivedAt - real.requests[0]!.receivedAt).toBeGreaterThanOrEqual(50);
  });

  it('429 insufficient_quota is not retried', async () => {
    const server = await startServer(apiError(429, 'You exceeded your current quota', { type: 'insufficient_quota', code: 'insufficient_quota' }));
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server) }), retryingStep(mathAgent));
    expect(step).toMatchObject({ status: 'failed', attempts: 1 });
    expect(step.error).toMatchObject({ code: ErrorCode.MODEL_RATE_LIMITED, retryable: false });
  });

  it('500 then success: MODEL_UNAVAILABLE is retried within the step policy', async () => {
    const server = await startServer(apiError(500, 'The server had an error', { type: 'server_error' }), answer('49'));
    const { step, events } = await runStep(engineWith({ modelProvider: providerFor(server) }), retryingStep(mathAgent));
    expect(step).toMatchObject({ status: 'completed', attempts: 2, output: '49' });
    expect(retries(events).map((e) => e.error)).toEqual([expect.objectContaining({ code: ErrorCode.MODEL_UNAVAILABLE, retryable: true, details: { httpStatus: 500 } })]);
  });

  it('5xx until attempts run out: the step fails with MODEL_UNAVAILABLE after maxAttempts', async () => {
    const server = await startServer(apiError(502, 'bad gateway'), apiError(503, 'unavailable'), apiError(504, 'timeout'));
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server) }), retryingStep(mathAgent, 3));
    expect(step).toMatchObject({ status: 'failed', attempts: 3 });
    expect(step.error).toMatchObject({ code: ErrorCode.MODEL_UNAVAILABLE, details: { httpStatus: 504 } });
    expect(server.remaining).toBe(0);
  });

  it('401: MODEL_AUTH_FAILED, not retried (attempts 1, one request)', async () => {
    const server = await startServer(apiError(401, 'Incorrect API key provided', { code: 'invalid_api_key' }), answer('never'));
    const { step, events } = await runStep(engineWith({ modelProvider: providerFor(server) }), retryingStep(mathAgent));
    expect(step).toMatchObject({ status: 'failed', attempts: 1 });
    expect(step.error).toMatchObject({ code: ErrorCode.MODEL_AUTH_FAILED, retryable: false, details: { httpStatus: 401, providerCode: 'invalid_api_key' } });
    expect(retries(events)).toEqual([]);
    expect(server.requests).toHaveLength(1);
  });

  it('a context-length error: MODEL_CONTEXT_LENGTH_EXCEEDED, not retried', async () => {
    const server = await startServer(
      apiError(400, "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", { code: 'context_length_exceeded' }),
    );
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server) }), retryingStep(mathAgent));
    expect(step).toMatchObject({ status: 'failed', attempts: 1 });
    expect(step.error).toMatchObject({ code: ErrorCode.MODEL_CONTEXT_LENGTH_EXCEEDED, retryable: false });
    expect(step.error!.message).toContain('maximum context length');
  });

  it('other 4xx (unknown model): MODEL_INVALID_REQUEST, not retried', async () => {
    const server = await startServer(apiError(404, 'The model `nope` does not exist', { code: 'model_not_found' }));
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server) }), retryingStep(mathAgent));
    expect(step).toMatchObject({ status: 'failed', attempts: 1 });
    expect(step.error).toMatchObject({ code: ErrorCode.MODEL_INVALID_REQUEST, retryable: false, details: { httpStatus: 404 } });
  });

  it('malformed JSON: MODEL_RESPONSE_INVALID, retried (then the good answer completes the step)', async () => {
    const server = await startServer(
      { kind: 'raw', status: 200, contentType: 'application/json', text: '{"id": "chatcmpl-1", "choices": [{"message": {"content": "tru' },
      { kind: 'json', status: 200, body: { id: 'x', object: 'chat.completion' } },
      answer('49'),
    );
    const { step, events } = await runStep(engineWith({ modelProvider: providerFor(server) }), retryingStep(mathAgent));
    expect(step).toMatchObject({ status: 'completed', attempts: 3, output: '49' });
    expect(retries(events).map((e) => e.error.code)).toEqual([ErrorCode.MODEL_RESPONSE_INVALID, ErrorCode.MODEL_RESPONSE_INVALID]);
    expect(retries(events)[1]!.error.message).toContain('no choices array');
  });

  it('a response slower than the step timeout: TIMEOUT, and the server sees the connection closed', async () => {
    const server = await startServer({ ...answer('too late'), delayMs: 20_000 });
    const started = Date.now();
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server) }), new AgentStep('slow', mathAgent, 'hurry').withTimeout(0.3));
    expect(step).toMatchObject({ status: 'failed', attempts: 1 });
    expect(step.error?.code).toBe(ErrorCode.TIMEOUT);
    expect(Date.now() - started).toBeLessThan(15_000);
    await within(server.requests[0]!.aborted, 5_000, 'the server noticing the aborted request');
    expect(server.requests[0]!.abortedByClient).toBe(true);
  });

  it('cancelling the run aborts the HTTP request (streaming too)', async () => {
    const server = await startServer({ ...answer('never'), delayMs: 20_000 });
    const controller = new AbortController();
    const engine = engineWith({ modelProvider: providerFor(server, { stream: true }) });
    const running = runStep(engine, new AgentStep('slow', mathAgent, 'wait'), { signal: controller.signal });
    await within(waitFor(() => server.requests.length === 1), 5_000, 'the request reaching the server');
    controller.abort();
    const { result, step } = await running;
    expect(result.status).toBe('cancelled');
    expect(step.error?.code).toBe(ErrorCode.CANCELLED);
    await within(server.requests[0]!.aborted, 5_000, 'the server noticing the aborted request');
  });

  it('an unreachable endpoint is MODEL_UNAVAILABLE (retryable)', async () => {
    const server = await startServer();
    const baseURL = server.baseURL;
    await server.close();
    const provider = new OpenAIModelProvider({ baseURL, apiKey: 'k', model: 'm', env: {} });
    await expect(provider.getCompletion(modelRequest(mathAgent))).rejects.toMatchObject({ code: ErrorCode.MODEL_UNAVAILABLE, retryable: true });
  });
});

function modelRequest(agent: Agent, extra: Partial<ModelRequest> = {}): ModelRequest {
  return {
    agent,
    model: undefined,
    messages: [
      { role: 'system', content: 'test' },
      { role: 'user', content: 'hello' },
    ],
    tools: [],
    outputSchema: undefined,
    signal: new AbortController().signal,
    ...extra,
  };
}

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

