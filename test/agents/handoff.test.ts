/**
 * Handoffs as in JAF, against the local Chat Completions server: the `handoff` tool lists the agent's
 * handoffs; calling it makes the target the active agent (its instructions as the system prompt, its
 * tools offered) within the same step, bounded by the step agent's maxTurns.
 */
import { describe, expect, it } from 'vitest';
import { Agent, AgentStep, ErrorCode, HANDOFF_TOOL_NAME, Tool, WorkflowContext } from 'jaf-workflows';
import { runAgent, type AgentRunOutcome } from '../../src/agents/run-agent.ts';
import { answer, callTools, systemPrompt } from '../support/chat-completions-server.ts';
import { closeAfterEach, engineWith, providerFor, quickRetry, runStep, startServer } from './support.ts';

closeAfterEach();

const refunds: unknown[] = [];
const refund = new Tool({
  name: 'refund',
  description: 'Refund an order',
  parameters: { type: 'object', properties: { orderId: { type: 'string' } }, required: ['orderId'] },
  execute: (args: { orderId: string }) => {
    refunds.push(args);
    return { refunded: args.orderId };
  },
});

const billing = new Agent({ name: 'billing', instructions: 'You are billing. You refund orders.', tools: [refund], handoffs: ['triage'] });
const triage = new Agent({ name: 'triage', instructions: 'You are triage. Route the customer.', handoffs: [billing, 'shipping'], maxTurns: 5 });

const handoffTo = (agentName: string, message = 'customer wants a refund') => callTools({ id: 'h1', name: HANDOFF_TOOL_NAME, arguments: { agent_name: agentName, message } });

describe('handoffs', () => {
  it('triage hands off to billing, which runs its tool and answers, in one step', async () => {
    refunds.length = 0;
    const server = await startServer(
      handoffTo('billing'),
      callTools({ id: 'r1', name: 'refund', arguments: { orderId: 'ORD-9' } }),
      answer('Refunded ORD-9.'),
    );
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server) }), new AgentStep('support', triage, 'Please refund ORD-9').withRetry(quickRetry(2)));

    expect(step).toMatchObject({ status: 'completed', attempts: 1, output: 'Refunded ORD-9.' });
    expect(step.metadata.usage).toMatchObject({ turns: 3, toolCalls: 2 });
    expect(refunds).toEqual([{ orderId: 'ORD-9' }]);
    const [first, second, third] = server.requests;
    // Triage is offered the handoff tool, its targets as an enum.
    expect(systemPrompt(first!)).toBe('You are triage. Route the customer.');
    expect(first!.body!.tools).toEqual([
      {
        type: 'function',
        function: expect.objectContaining({
          name: 'handoff',
          parameters: expect.objectContaining({ properties: expect.objectContaining({ agent_name: expect.objectContaining({ enum: ['billing', 'shipping'] }) }) }),
        }),
      },
    ]);
    // After the handoff, billing's instructions are the system prompt and its tools are offered; the history is kept.
    expect(systemPrompt(second!)).toBe('You are billing. You refund orders.');
    expect(second!.body!.tools!.map((t) => t.function.name)).toEqual(['refund', 'handoff']);
    expect(second!.body!.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool']);
    expect(JSON.parse(second!.body!.messages[3]!.content!)).toEqual({ handoff_to: 'billing', message: 'customer wants a refund' });
    expect(systemPrompt(third!)).toBe('You are billing. You refund orders.');
  });

  it('the outcome records which agent answered and the handoffs taken (a cycle back by name resolves)', async () => {
    const server = await startServer(handoffTo('billing'), handoffTo('triage', 'not a billing question'), answer('Triage answers.'));
    const outcome = await direct(server.baseURL, triage);
    expect(outcome).toMatchObject({ ok: true, output: 'Triage answers.', agentName: 'triage', handoffs: ['billing', 'triage'] });

    const again = await startServer(handoffTo('billing'), answer('Billing answers.'));
    expect(await direct(again.baseURL, triage)).toMatchObject({ ok: true, agentName: 'billing', handoffs: ['billing'] });
  });

  it('a handoff to an agent not in the handoffs list fails the step with AGENT_HANDOFF_INVALID (retryable), before any tool runs', async () => {
    refunds.length = 0;
    const server = await startServer(
      callTools({ id: 'r0', name: 'refund', arguments: { orderId: 'X' } }, { id: 'h0', name: HANDOFF_TOOL_NAME, arguments: { agent_name: 'accounting' } }),
      answer('fine'),
    );
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server) }), new AgentStep('support', billing, 'hi').withRetry(quickRetry(2)));
    expect(step).toMatchObject({ status: 'completed', attempts: 2 });
    expect(refunds).toEqual([]);

    const once = await startServer(handoffTo('accounting'));
    const failed = await runStep(engineWith({ modelProvider: providerFor(once) }), new AgentStep('support', triage, 'hi'));
    expect(failed.step.error).toMatchObject({ code: ErrorCode.AGENT_HANDOFF_INVALID, retryable: true, details: { from: 'triage', allowed: ['billing', 'shipping'] } });
  });

  it('a listed target no registry knows: AGENT_HANDOFF_INVALID, not retryable; a resolver (the registry) finds it', async () => {
    const server = await startServer(handoffTo('shipping'));
    const { step } = await runStep(engineWith({ modelProvider: providerFor(server) }), new AgentStep('support', triage, 'hi').withRetry(quickRetry(3)));
    expect(step).toMatchObject({ status: 'failed', attempts: 1 });
    expect(step.error).toMatchObject({ code: ErrorCode.AGENT_HANDOFF_INVALID, retryable: false });
    expect(step.error!.message).toContain('no agent named shipping');

    const shipping = new Agent({ name: 'shipping', instructions: 'You are shipping.' });
    const resolved = await startServer(handoffTo('shipping'), answer('Shipped.'));
    const outcome = await direct(resolved.baseURL, triage, (name) => (name === 'shipping' ? shipping : undefined));
    expect(outcome).toMatchObject({ ok: true, agentName: 'shipping', output: 'Shipped.' });
    expect(systemPrompt(resolved.requests[1]!)).toBe('You are shipping.');
  });

  it('streamed deltas reach the run request, tagged with the agent producing them, across a handoff', async () => {
    const server = await startServer(handoffTo('billing'), answer('Refund on its way.'));
    const deltas: [string, string][] = [];
    const outcome = await direct(server.baseURL, triage, undefined, { stream: true, onDelta: (agentName, text) => deltas.push([agentName, text]) });
    expect(outcome).toMatchObject({ ok: true, output: 'Refund on its way.', agentName: 'billing' });
    expect(deltas).toEqual([
      ['billing', 'Refund '],
      ['billing', 'on '],
      ['billing', 'its '],
      ['billing', 'way.'],
    ]);
  });

  it("handoffs count against the step agent's maxTurns", async () => {
    const pingPong = new Agent({ name: 'ping', instructions: 'ping', handoffs: [new Agent({ name: 'pong', instructions: 'pong', handoffs: ['ping'] })], maxTurns: 3 });
    const server = await startServer(handoffTo('pong'), handoffTo('ping'), handoffTo('pong'), answer('never asked'));
    const outcome = await direct(server.baseURL, pingPong);
    expect(outcome).toMatchObject({ ok: false, error: { code: ErrorCode.MAX_TURNS_EXCEEDED }, usage: { turns: 3 } });
    expect(server.remaining).toBe(1);
  });

  it('an Agent refuses bad handoffs, naming the problem', () => {
    expect(() => new Agent({ name: 'a', instructions: 'x', handoffs: ['a'] })).toThrow(/names the agent itself/);
    expect(() => new Agent({ name: 'a', instructions: 'x', handoffs: ['b', 'b'] })).toThrow(/lists b twice/);
    expect(() => new Agent({ name: 'a', instructions: 'x', handoffs: [''] })).toThrow(/handoffs\[0\]/);
    const clash = new Tool({ name: 'handoff', execute: () => 1 });
    expect(() => new Agent({ name: 'a', instructions: 'x', tools: [clash], handoffs: ['b'] })).toThrow(/clashes with the handoff tool/);
  });
});

/** runAgent straight against the server, with a tool runner that runs inline tools in-process. */
async function direct(
  baseURL: string,
  agent: Agent,
  resolveAgent?: (name: string) => Agent | undefined,
  options: { stream?: boolean; onDelta?: (agentName: string, text: string) => void } = {},
): Promise<AgentRunOutcome> {
  const provider = providerFor({ baseURL }, { stream: options.stream ?? false });
  return runAgent({
    agent,
    input: 'help',
    context: undefined,
    workflow: new WorkflowContext({ workflowId: 'direct' }),
    provider,
    signal: new AbortController().signal,
    runTool: async () => ({ kind: 'ok', output: null, outputJson: undefined }),
    ...(resolveAgent === undefined ? {} : { resolveAgent }),
    ...(options.onDelta === undefined ? {} : { onDelta: options.onDelta }),
  });
}
