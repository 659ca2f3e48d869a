import { afterAll, describe, expect, it } from 'vitest';
import {
  Agent,
  AgentStep,
  ScriptedModelProvider,
  textReply,
  Tool,
  toolCallReply,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowEngine,
  type ModelRequest,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';

const lookups: unknown[] = [];
const lookupOrder = new Tool({
  name: 'lookup_order',
  description: 'Find an order',
  parameters: { type: 'object', properties: { orderId: { type: 'string' } }, required: ['orderId'] },
  execute: (args: { orderId: string }, ctx) => {
    lookups.push({ args, key: ctx.idempotencyKey, userContext: ctx.userContext });
    return { orderId: args.orderId, status: 'shipped' };
  },
});
const square = new Tool({
  name: 'square',
  parameters: { type: 'object', properties: { n: { type: 'number' }, busyMs: { type: 'number' } }, required: ['n'] },
  module: new URL('../fixtures/tools/slow-square.ts', import.meta.url),
});

const support = new Agent({
  name: 'support',
  instructions: (state) => `You help customers of ${(state.context as { shop: string }).shop}.`,
  tools: [lookupOrder, square],
  maxTurns: 3,
});

const ctx = () => new WorkflowContext({ workflowId: 'c', userContext: { shop: 'Acme' }, variables: { orderId: 'ORD-1' } });
const engines: WorkflowEngine[] = [];
function engineWith(provider: ScriptedModelProvider) {
  const engine = new WorkflowEngine({ modelProvider: provider, agents: [support], pool: { maxThreads: 2 }, logger: quietLogger() });
  engines.push(engine);
  return engine;
}
afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
});

const workflow = (step = new AgentStep('answer', 'support').withInputFunction((c) => `Where is ${c.get<string>('orderId')}?`)) =>
  new WorkflowBuilder('support_flow').addStep(step).build();

describe('AgentStep runs the agent loop against the model provider', () => {
  it('sends instructions as the system prompt and the input as the user message, runs the tool call, returns the final answer', async () => {
    const provider = new ScriptedModelProvider([
      toolCallReply([{ name: 'lookup_order', arguments: { orderId: 'ORD-1' } }], { promptTokens: 20, completionTokens: 5 }),
      textReply('Your order ORD-1 has shipped.', { promptTokens: 40, completionTokens: 8 }),
    ]);
    const result = await engineWith(provider).executeWorkflow(workflow(), ctx(), { runId: 'run-1' });
    expect(result.status).toBe('completed');
    expect(result.finalOutput).toBe('Your order ORD-1 has shipped.');
    const first = provider.requests[0]!;
    expect(first.messages).toEqual([
      { role: 'system', content: 'You help customers of Acme.' },
      { role: 'user', content: 'Where is ORD-1?' },
    ]);
    expect(first.tools.map((t) => t.name)).toEqual(['lookup_order', 'square']);
    const second = provider.requests[1]!.messages;
    expect(second[2]).toMatchObject({ role: 'assistant', toolCalls: [{ name: 'lookup_order' }] });
    expect(second[3]).toMatchObject({ role: 'tool', toolCallId: 'call_1', name: 'lookup_order' });
    expect(JSON.parse((second[3] as { content: string }).content)).toEqual({ status: 'executed', result: { orderId: 'ORD-1', status: 'shipped' } });
    expect(lookups.at(-1)).toEqual({ args: { orderId: 'ORD-1' }, key: 'run-1:answer/1.1.0:lookup_order', userContext: { shop: 'Acme' } });
    expect(result.steps[0]!.metadata.usage).toEqual({ promptTokens: 60, completionTokens: 13, turns: 2, toolCalls: 1 });
  });

  it('runs parallel tool calls concurrently, pool tools on different threads', async () => {
    const provider = new ScriptedModelProvider([
      toolCallReply([
        { name: 'square', arguments: { n: 3, busyMs: 150 } },
        { name: 'square', arguments: { n: 4, busyMs: 150 } },
      ]),
      (request: ModelRequest) => {
        const results = request.messages.filter((m) => m.role === 'tool').map((m) => JSON.parse(m.content).result);
        return textReply(JSON.stringify(results));
      },
    ]);
    const result = await engineWith(provider).executeWorkflow(workflow(), ctx());
    const [a, b] = JSON.parse(result.finalOutput as string) as { square: number; threadId: number }[];
    expect([a!.square, b!.square]).toEqual([9, 16]);
    expect(a!.threadId).not.toBe(b!.threadId);
  });

  it('returns tool problems to the model instead of failing the step', async () => {
    const provider = new ScriptedModelProvider([
      { message: { content: null, toolCalls: [{ id: 'x', name: 'nope', arguments: '{}' }, { id: 'y', name: 'lookup_order', arguments: '{bad json' }, { id: 'z', name: 'lookup_order', arguments: '{}' }] } },
      textReply('sorry'),
    ]);
    const result = await engineWith(provider).executeWorkflow(workflow(), ctx());
    expect(result.status).toBe('completed');
    const toolMessages = provider.requests[1]!.messages.filter((m) => m.role === 'tool').map((m) => JSON.parse(m.content));
    expect(toolMessages).toEqual([
      expect.objectContaining({ status: 'error', code: 'TOOL_NOT_FOUND' }),
      expect.objectContaining({ status: 'error', code: 'INVALID_TOOL_ARGS', message: 'arguments for lookup_order are not valid JSON' }),
      expect.objectContaining({ status: 'error', code: 'INVALID_TOOL_ARGS', message: "tool lookup_order: args must have required property 'orderId'" }),
    ]);
  });

  it('fails with MAX_TURNS_EXCEEDED when the model never answers', async () => {
    const provider = new ScriptedModelProvider([], { whenExhausted: toolCallReply([{ name: 'lookup_order', arguments: { orderId: 'A' } }]) });
    const result = await engineWith(provider).executeWorkflow(workflow(), ctx());
    expect(result.status).toBe('failed');
    expect(result.error).toMatchObject({ code: 'MAX_TURNS_EXCEEDED', retryable: false, stepPath: 'answer' });
    expect(provider.requests).toHaveLength(3);
  });

  it('retries a failing provider within the step retry policy, as MODEL_ERROR', async () => {
    let calls = 0;
    const provider = new ScriptedModelProvider([], {
      whenExhausted: () => {
        calls += 1;
        if (calls < 3) throw new Error('upstream 503');
        return textReply('ok');
      },
    });
    const step = new AgentStep('answer', 'support', 'hello').withRetry({ maxAttempts: 3, initialDelaySeconds: 0.001 });
    const result = await engineWith(provider).executeWorkflow(workflow(step), ctx());
    expect(result.status).toBe('completed');
    expect(result.steps[0]!.attempts).toBe(3);
  });

  it('aborts the model call at the step timeout', async () => {
    let aborted = false;
    const provider = new ScriptedModelProvider([
      (request) =>
        new Promise((_resolve, reject) => {
          request.signal.addEventListener('abort', () => {
            aborted = true;
            reject(new Error('aborted'));
          });
        }),
    ]);
    const step = new AgentStep('answer', 'support', 'hello').withTimeout(0.2);
    const result = await engineWith(provider).executeWorkflow(workflow(step), ctx());
    expect(result.error?.code).toBe('TIMEOUT');
    expect(aborted).toBe(true);
  });

  it('validates structured output against the agent outputSchema', async () => {
    const classifier = new Agent({
      name: 'classifier',
      instructions: 'Classify.',
      outputSchema: { type: 'object', properties: { label: { enum: ['spam', 'ham'] } }, required: ['label'] },
    });
    const good = new ScriptedModelProvider([textReply('{"label":"spam"}')]);
    const ok = await engineWith(good).executeWorkflow(workflow(new AgentStep('classify', classifier, 'buy now')), ctx());
    expect(ok.context.get('label')).toBe('spam');
    const bad = new ScriptedModelProvider([textReply('{"label":"eggs"}')]);
    const failed = await engineWith(bad).executeWorkflow(workflow(new AgentStep('classify', classifier, 'buy now')), ctx());
    expect(failed.error).toMatchObject({ code: 'AGENT_OUTPUT_INVALID', message: 'agent classifier: output.label must be equal to one of the allowed values' });
  });

  it('gives instructions the context function result, and the variables as input when none is set', async () => {
    const seen: unknown[] = [];
    const agent = new Agent({ name: 'ctx_agent', instructions: (state) => (seen.push(state.context), 'sys') });
    const provider = new ScriptedModelProvider([textReply('done')]);
    const step = new AgentStep('a', agent).withContextFunction((c) => ({ tier: c.get('tier', 'standard') }));
    await engineWith(provider).executeWorkflow(workflow(step), ctx());
    expect(seen).toEqual([{ tier: 'standard' }]);
    expect(provider.requests[0]!.messages[1]).toEqual({ role: 'user', content: JSON.stringify({ orderId: 'ORD-1' }) });
  });
});
