/**
 * The seed's AgentStep examples with a real model provider: OpenAIModelProvider over HTTP to the local
 * Chat Completions server instead of the in-process ScriptedModelProvider. The "Step Types" AgentStep
 * example (condition, withTimeout(60).withRetry(3)) and the e-commerce example, whose server answers
 * each agent with the example's own deterministic script.
 */
import { describe, expect, it } from 'vitest';
import { Agent, AgentStep, ErrorCode, RecordingClock, WorkflowBuilder, WorkflowContext, type AgentState, type ChatMessage, type ModelRequest, type StepResult } from 'jaf-workflows';
import {
  SCRIPTED_LABEL,
  createOrderContext,
  createOrderEngine,
  createOrderProcessingWorkflow,
  orderAgents,
  scriptedOrderReply,
  type OrderData,
} from '../../examples/order-processing.ts';
import { quietLogger } from '../helpers/logging.ts';
import { answer, apiError, systemPrompt, type RecordedRequest, type ScriptedReply } from '../support/chat-completions-server.ts';
import { closeAfterEach, engineWith, providerFor, startServer, within } from './support.ts';

closeAfterEach();

describe('seed AgentStep (Step Types) against the Chat Completions server', () => {
  // Create an agent
  function instructions(_state: AgentState): string {
    return 'You are a helpful customer service agent.';
  }
  const customerAgent = new Agent({ name: 'CustomerServiceAgent', instructions, tools: [] });

  function createAgentStep(): AgentStep {
    const agentStep = new AgentStep('customer_service', customerAgent, 'Handle customer inquiry about billing');
    agentStep.withTimeout(60).withRetry(3);
    agentStep.addCondition((context) => context.get('priority') === 'high');
    return agentStep;
  }

  const run = async (step: AgentStep, baseURL: string, priority: string, clock = new RecordingClock()) => {
    const engine = engineWith({ modelProvider: providerFor({ baseURL }), clock });
    const result = await engine.executeWorkflow(new WorkflowBuilder('support').addStep(step).build(), new WorkflowContext({ workflowId: 'ticket_1', variables: { priority } }));
    return { result, step: result.steps[0]! };
  };

  it('priority high: the agent answers over HTTP', async () => {
    const server = await startServer(answer('Your billing question is answered.'));
    const { result, step } = await run(createAgentStep(), server.baseURL, 'high');
    expect(result.status).toBe('completed');
    expect(step).toMatchObject({ stepId: 'customer_service', status: 'completed', attempts: 1, output: 'Your billing question is answered.' });
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]!.body!.messages).toEqual([
      { role: 'system', content: 'You are a helpful customer service agent.' },
      { role: 'user', content: 'Handle customer inquiry about billing' },
    ]);
    expect(server.requests[0]!.body!.tools).toBeUndefined();
  });

  it('priority low: skipped, no HTTP request', async () => {
    const server = await startServer();
    const { step } = await run(createAgentStep(), server.baseURL, 'low');
    expect(step).toMatchObject({ status: 'skipped', attempts: 0 });
    expect(server.requests).toHaveLength(0);
  });

  it('withRetry(3): three 503s then an answer (attempts 4); 503s throughout fail with MODEL_UNAVAILABLE', async () => {
    const outage = apiError(503, 'The engine is currently overloaded', { type: 'server_error' });
    const recovering = await startServer(outage, outage, outage, answer('Answered on the 4th try.'));
    const clock = new RecordingClock();
    const recovered = await run(createAgentStep(), recovering.baseURL, 'high', clock);
    expect(recovered.step).toMatchObject({ status: 'completed', attempts: 4, output: 'Answered on the 4th try.' });
    expect(clock.sleeps).toHaveLength(3);

    const down = await startServer(outage, outage, outage, outage);
    const failed = await run(createAgentStep(), down.baseURL, 'high');
    expect(failed.step).toMatchObject({ status: 'failed', attempts: 4 });
    expect(failed.step.error).toMatchObject({ code: ErrorCode.MODEL_UNAVAILABLE, retryable: true });
    expect(down.requests).toHaveLength(4);
  });

  it('the step timeout (shortened from 60 s) aborts each overrunning HTTP request; every attempt times out', async () => {
    const slow = { ...answer('too late'), delayMs: 20_000 };
    const server = await startServer(slow, slow, slow, slow);
    const { step } = await run(createAgentStep().withTimeout(0.2), server.baseURL, 'high');
    expect(step).toMatchObject({ status: 'failed', attempts: 4 });
    expect(step.error?.code).toBe(ErrorCode.TIMEOUT);
    expect(server.requests).toHaveLength(4);
    await within(Promise.all(server.requests.map((r) => r.aborted)), 5_000, 'the server seeing four aborted requests');
  });
});

describe('seed e-commerce example against the Chat Completions server', () => {
  /** The example's offline script, served over HTTP: the agent is recognised by its system prompt. */
  function orderReply(request: RecordedRequest): ScriptedReply {
    const system = systemPrompt(request);
    const agent = orderAgents.find((a) => system.startsWith(`You are the ${a.name.replace(/_agent$/, '').replaceAll('_', ' ')} agent`));
    if (agent === undefined) return apiError(400, `no script for system prompt ${system.slice(0, 60)}`);
    const messages = request.body!.messages.map((m) => ({ role: m.role, content: m.content ?? '' })) as ChatMessage[];
    const reply = scriptedOrderReply({ agent, messages } as unknown as ModelRequest);
    const calls = reply.message.toolCalls ?? [];
    return calls.length === 0
      ? answer(reply.message.content ?? '')
      : { kind: 'message', content: null, toolCalls: calls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments as string })) };
  }

  async function run(overrides: Partial<OrderData>, stream: boolean) {
    const server = await startServer(...Array.from({ length: 10 }, () => orderReply));
    const engine = createOrderEngine({ logger: quietLogger(), clock: new RecordingClock(), modelProvider: providerFor(server, { stream }) });
    try {
      const result = await engine.executeWorkflow(createOrderProcessingWorkflow(), createOrderContext(overrides));
      return { result, server };
    } finally {
      await engine.close();
    }
  }

  const find = (steps: readonly StepResult[], path: string): StepResult | undefined => {
    for (const s of steps) {
      if (s.path === path) return s;
      const inner = find(s.children, path);
      if (inner !== undefined) return inner;
    }
    return undefined;
  };

  it('happy path: 5/5 steps, the fulfillment agent answers structured JSON over HTTP', async () => {
    const { result, server } = await run({}, false);
    expect(result.status).toBe('completed');
    expect(result.stepsCompleted).toBe(5);
    expect(server.requests).toHaveLength(1);
    const body = server.requests[0]!.body!;
    expect(body.response_format).toMatchObject({ type: 'json_schema', json_schema: { name: 'fulfillment_agent', schema: { required: ['final_notification'] } } });
    expect(systemPrompt(server.requests[0]!)).toContain('Order status: ready_to_ship');
    expect(result.context.get('final_notification')).toBe(`${SCRIPTED_LABEL} Order ORD-12345 is packed and ready to ship. As a premium customer you have priority support.`);
  });

  it('out of stock (streaming): the inventory agent calls its pool tool through the server, then backorders the item', async () => {
    const { result, server } = await run({ order_items: [{ sku: 'ITEM-003', quantity: 1, price: 19.99 }], order_total: 19.99 }, true);
    expect(result.status).toBe('completed');
    const agentStep = find(result.steps, 'payment_processing/inventory_agent')!;
    expect(agentStep).toMatchObject({ kind: 'agent', status: 'completed' });
    expect(agentStep.metadata.usage).toMatchObject({ turns: 2, toolCalls: 1 });
    expect(server.requests.map((r) => r.body!.stream)).toEqual([true, true, true]);
    const toolMessage = server.requests[1]!.body!.messages.find((m) => m.role === 'tool')!;
    expect(JSON.parse(toolMessage.content!)).toMatchObject({ status: 'executed', result: { inventory_available: false, unavailable_items: ['ITEM-003'] } });
    expect(result.context.get('backordered_skus')).toEqual(['ITEM-003']);
    expect(result.context.get('inventory_message')).toBe(`${SCRIPTED_LABEL} ITEM-003 of order ORD-12345 go on backorder; we will ship when restocked.`);
  });
});
