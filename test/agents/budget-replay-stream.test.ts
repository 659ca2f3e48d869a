/**
 * Token budgets, record/replay of model responses and streamed partial output, against the local Chat
 * Completions server, through a real engine and (for record/replay and resumable deltas) a SQLite store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Agent,
  AgentStep,
  ErrorCode,
  ParallelStep,
  parseWorkflowDocument,
  SqliteRunStore,
  Tool,
  WorkflowBuilder,
  WorkflowContext,
  type PartialOutput,
  type RunEvent,
  type StepResult,
} from 'jaf-workflows';
import { answer, callTools } from '../support/chat-completions-server.ts';
import { closeAfterEach, engineWith, providerFor, startServer } from './support.ts';

closeAfterEach();
const dir = mkdtempSync(join(tmpdir(), 'jaf-budget-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let lookups = 0;
const lookup = new Tool({
  name: 'lookup',
  parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] },
  execute: (args: { q: string }) => {
    lookups += 1;
    return { found: `${args.q}: 3 items` };
  },
});
const researcher = new Agent({ name: 'researcher', instructions: 'Look things up, then answer.', tools: [lookup], maxTurns: 5 });
const writer = new Agent({ name: 'writer', instructions: 'Write one line.' });
const ctx = () => new WorkflowContext({ workflowId: 'budget' });

describe('token budgets', () => {
  it('a step budget that runs out mid-loop: the next request is not sent; the step fails BUDGET_EXCEEDED', async () => {
    // The first response costs 560 of 600 tokens; the second request (with the tool result) needs more than the 40 left.
    const server = await startServer(
      { kind: 'message', content: null, toolCalls: [{ id: 'c1', name: 'lookup', arguments: { q: 'stock' } }], usage: { prompt_tokens: 500, completion_tokens: 60 } },
      answer('never sent'),
    );
    const engine = engineWith({ agents: [researcher], modelProvider: providerFor(server) });
    const doc = parseWorkflowDocument('id: research\nsteps:\n  - id: research\n    agent: researcher\n    message: how many in stock?\n    tokenBudget: 600\n', {
      agents: [researcher],
    });
    const result = await engine.executeWorkflow(doc, ctx());
    const step = result.steps[0]!;
    expect(step.error).toMatchObject({ code: ErrorCode.BUDGET_EXCEEDED, retryable: false, details: { scope: 'step', limit: 600, used: 560 } });
    expect(server.requests).toHaveLength(1);
    expect(step.metadata.usage).toMatchObject({ promptTokens: 500, completionTokens: 60, turns: 1 });
  });

  it('a run budget spans steps: the second agent step is refused before it sends anything', async () => {
    const server = await startServer(answer('first line', { prompt_tokens: 900, completion_tokens: 90 }), answer('never sent'));
    const engine = engineWith({ agents: [writer], modelProvider: providerFor(server) });
    const workflow = new WorkflowBuilder('two').addStep(new AgentStep('one', 'writer', 'go')).addStep(new AgentStep('two', 'writer', 'go again')).build();
    const result = await engine.executeWorkflow(workflow, ctx(), { tokenBudget: 1000 });
    expect(result.steps[0]!.status).toBe('completed');
    expect(result.steps[1]!.error).toMatchObject({ code: ErrorCode.BUDGET_EXCEEDED, details: { scope: 'run', limit: 1000, used: 990 } });
    expect(server.requests).toHaveLength(1);
    await expect(engine.executeWorkflow(workflow, ctx(), { tokenBudget: 0 })).rejects.toThrow(/tokenBudget must be an integer from 1/);
    expect(() => new AgentStep('x', 'writer').withTokenBudget(1.5)).toThrow(/tokenBudget/);
  });
});

describe('tokens of failed attempts', () => {
  it('a retried agent attempt stores its usage on step_retrying, so a recovered run counts it', async () => {
    const store = SqliteRunStore.open({ path: join(dir, 'retry-usage.db') });
    try {
      const strict = new Agent({ name: 'strict', instructions: 'Answer in JSON.', outputSchema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } });
      const server = await startServer(answer('not json', { prompt_tokens: 100, completion_tokens: 20 }), answer('{"ok":true}', { prompt_tokens: 50, completion_tokens: 10 }));
      const engine = engineWith({ agents: [strict], modelProvider: providerFor(server), store });
      const workflow = new WorkflowBuilder('retry-usage').addStep(new AgentStep('ask', 'strict', 'go').withRetry(1)).build();
      const result = await engine.executeWorkflow(workflow, ctx(), { runId: 'retry-usage-run' });
      expect(result.status).toBe('completed');
      expect(result.steps[0]!.metadata.usage).toMatchObject({ promptTokens: 50, completionTokens: 10 });
      const retrying = (await store.readEvents('retry-usage-run')).filter((e) => e.type === 'step_retrying');
      expect(retrying).toMatchObject([{ path: 'ask', attempt: 1, error: { code: ErrorCode.AGENT_OUTPUT_INVALID }, usage: { promptTokens: 100, completionTokens: 20 } }]);
    } finally {
      await store.close();
    }
  });
});

describe('token budgets shared by parallel agent steps', () => {
  // maxTokens 600 makes each request's estimate a little over 600 tokens: two fit a 1,200 budget only one at a time.
  const brief = new Agent({ name: 'brief', instructions: 'One word.', maxTokens: 600 });
  const twoBranches = () =>
    new WorkflowBuilder('parallel-budget')
      .addStep(new ParallelStep('both', [new AgentStep('left', 'brief', 'go'), new AgentStep('right', 'brief', 'go')]))
      .build();

  it('a request that fits only once the one in flight settles waits for it, and is sent if it still fits', async () => {
    const server = await startServer({ ...answer('a', { prompt_tokens: 20, completion_tokens: 10 }), delayMs: 150 }, answer('b', { prompt_tokens: 20, completion_tokens: 10 }));
    const engine = engineWith({ agents: [brief], modelProvider: providerFor(server) });
    const result = await engine.executeWorkflow(twoBranches(), ctx(), { tokenBudget: 1200 });
    expect(result.status).toBe('completed');
    expect(server.requests).toHaveLength(2);
  });

  it('branches in flight together cannot overspend the run budget: the second is refused once the first has used too much', async () => {
    // Without reservations both requests went out at once and used 1,400 of the 1,200.
    const server = await startServer({ ...answer('a', { prompt_tokens: 500, completion_tokens: 200 }), delayMs: 150 }, answer('never sent'));
    const engine = engineWith({ agents: [brief], modelProvider: providerFor(server) });
    const result = await engine.executeWorkflow(twoBranches(), ctx(), { tokenBudget: 1200 });
    const branches = result.steps[0]!.children;
    const refused = branches.find((b) => b.status === 'failed')!;
    expect(refused.error).toMatchObject({ code: ErrorCode.BUDGET_EXCEEDED, details: { scope: 'run', limit: 1200, used: 700 } });
    expect(branches.filter((b) => b.status === 'completed')).toHaveLength(1);
    expect(server.requests).toHaveLength(1);
  });
});

describe('record and replay', () => {
  it('records every model response; a replay with the server stopped gives the same results, runs the tools again, and fails loudly on a response never recorded', async () => {
    const store = SqliteRunStore.open({ path: join(dir, 'record.db') });
    try {
      const server = await startServer(callTools({ id: 'c1', name: 'lookup', arguments: { q: 'widgets' } }), answer('There are 3 widgets.'));
      const workflow = new WorkflowBuilder('recorded').addStep(new AgentStep('ask', 'researcher', 'how many widgets?')).build();
      const recording = engineWith({ agents: [researcher], modelProvider: providerFor(server), store });
      const recorded = await recording.executeWorkflow(workflow, ctx(), { recordModelResponses: true, runId: 'recorded-run' });
      expect(recorded.status).toBe('completed');
      const events = await store.readEvents('recorded-run');
      const responses = events.filter((e): e is Extract<RunEvent, { type: 'model_responded' }> => e.type === 'model_responded');
      expect(responses.map((e) => [e.path, e.attempt, e.turn, e.agent, e.model])).toEqual([
        ['ask', 1, 1, 'researcher', 'test-model'],
        ['ask', 1, 2, 'researcher', 'test-model'],
      ]);
      await server.close();
      expect(lookups).toBeGreaterThan(0);
      const lookupsBefore = lookups;

      // The provider still points at the stopped server: a replay must not need it.
      const replay = await recording.executeWorkflow(workflow, ctx(), { replayModelResponsesFrom: 'recorded-run', runId: 'replayed-run' });
      expect(replay.status).toBe('completed');
      expect(replay.finalOutput).toEqual(recorded.finalOutput);
      expect(lookups).toBe(lookupsBefore + 1);
      expect((await store.readEvents('replayed-run'))[0]).toMatchObject({ type: 'run_started', replayModelResponsesFrom: 'recorded-run' });

      const longer = new WorkflowBuilder('recorded').addStep(new AgentStep('ask', 'researcher', 'how many widgets?')).addStep(new AgentStep('more', 'researcher', 'and gadgets?')).build();
      const missing = await recording.executeWorkflow(longer, ctx(), { replayModelResponsesFrom: 'recorded-run' });
      expect(missing.steps[0]!.status).toBe('completed');
      expect(missing.steps[1]!.error).toMatchObject({ code: ErrorCode.MODEL_RESPONSE_NOT_RECORDED, retryable: false });
      expect(missing.steps[1]!.error!.message).toContain('step more attempt 1 model call 1');
      await expect(recording.executeWorkflow(workflow, ctx(), { replayModelResponsesFrom: 'no-such-run' })).rejects.toThrow(/run no-such-run does not exist/);
    } finally {
      await store.close();
    }
  });
});

describe('streamed partial output', () => {
  it('token deltas reach executeWorkflowStream in order, before the step result, and are stored as events a watcher resumes by seq', async () => {
    const store = SqliteRunStore.open({ path: join(dir, 'stream.db') });
    try {
      const text = 'Your order of three widgets ships today from the main warehouse.';
      const server = await startServer(answer(text));
      const engine = engineWith({ agents: [writer], modelProvider: providerFor(server, { stream: true }), store });
      const workflow = new WorkflowBuilder('streamed').addStep(new AgentStep('write', 'writer', 'write it')).build();
      const items: (StepResult | PartialOutput)[] = [];
      const stream = engine.executeWorkflowStream(workflow, ctx(), { partialOutput: true, runId: 'streamed-run' });
      for await (const item of stream) items.push(item);
      const partial = items.filter((i): i is PartialOutput => 'kind' in i && i.kind === 'partial_output');
      expect(partial.length).toBeGreaterThan(0);
      expect(partial.map((p) => p.text).join('')).toBe(text);
      expect(partial.every((p) => p.stepPath === 'write' && p.agent === 'writer' && p.attempt === 1)).toBe(true);
      expect(items.at(-1)).toMatchObject({ stepId: 'write', status: 'completed', output: text });

      const events = await store.readEvents('streamed-run');
      const deltas = events.filter((e) => e.type === 'step_output_delta');
      expect(deltas.map((e) => (e as { text: string }).text).join('')).toBe(text);
      const cut = deltas[0]!.seq;
      const resumed: RunEvent[] = [];
      for await (const event of engine.watchRun('streamed-run', { afterSeq: cut })) resumed.push(event);
      expect(resumed.map((e) => e.seq)).toEqual(events.filter((e) => e.seq > cut).map((e) => e.seq));
    } finally {
      await store.close();
    }
  });
});

describe('which provider and model a step uses', () => {
  it("an agent's own provider wins over the engine's; a step's model wins over the agent's; a replay wins over both", async () => {
    const engineServer = await startServer(answer('from the engine endpoint'));
    const agentServer = await startServer(answer('from the agent endpoint'), answer('again from the agent endpoint'));
    const store = SqliteRunStore.open({ path: join(dir, 'providers.db') });
    try {
      const own = new Agent({ name: 'own', instructions: 'Answer.', model: 'agent-model', modelProvider: providerFor(agentServer) });
      const engine = engineWith({ agents: [own, writer], modelProvider: providerFor(engineServer), store });
      const workflow = new WorkflowBuilder('providers')
        .addStep(new AgentStep('mine', 'own', 'hi'))
        .addStep(new AgentStep('default', 'writer', 'hi'))
        .addStep(new AgentStep('override', 'own', 'hi').withModel('step-model'))
        .build();
      const result = await engine.executeWorkflow(workflow, ctx(), { recordModelResponses: true, runId: 'providers-run' });
      expect(result.steps.map((s) => s.output)).toEqual(['from the agent endpoint', 'from the engine endpoint', 'again from the agent endpoint']);
      expect(agentServer.requests.map((r) => r.body?.model)).toEqual(['agent-model', 'step-model']);
      expect(engineServer.requests.map((r) => r.body?.model)).toEqual(['test-model']);
      const replay = await engine.executeWorkflow(workflow, ctx(), { replayModelResponsesFrom: 'providers-run' });
      expect(replay.steps.map((s) => s.output)).toEqual(result.steps.map((s) => s.output));
      expect(agentServer.requests).toHaveLength(2);
      expect(engineServer.requests).toHaveLength(1);
      // With no engine provider, an agent with its own still validates and runs.
      const alone = engineWith({ agents: [own] });
      agentServer.script(answer('alone'));
      expect((await alone.executeWorkflow(new WorkflowBuilder('alone').addStep(new AgentStep('a', 'own', 'hi')).build(), ctx())).finalOutput).toBe('alone');
    } finally {
      await store.close();
    }
  });
});
