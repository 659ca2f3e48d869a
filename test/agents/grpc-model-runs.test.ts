/**
 * Model runs over gRPC: StartRun with a token budget and recording, WatchRun carrying the streamed
 * partial output and the recorded responses, then a replay started by name with the model server gone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, status } from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { Agent, SqliteRunStore, WorkflowEngine } from 'jaf-workflows';
import { createCoordinator } from '../../src/grpc/coordinator.ts';
import { fromProtoStruct, WorkflowServiceClient, type ProtoStruct } from '../../src/grpc/proto.ts';
import { callUnary, collectStream, expectFailure, richStatusOf, type AnyClient, type Msg } from '../helpers/grpc.ts';
import { quietLogger } from '../helpers/logging.ts';
import { ChatCompletionsServer, answer } from '../support/chat-completions-server.ts';
import { providerFor } from './support.ts';

const dir = mkdtempSync(join(tmpdir(), 'jaf-grpc-model-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('model runs over gRPC', () => {
  it('records with a budget, streams deltas and responses in WatchRun, then replays by name without the model', async () => {
    const text = 'Three widgets ship today.';
    const model = await ChatCompletionsServer.start([answer(text, { prompt_tokens: 40, completion_tokens: 6 })]);
    const writer = new Agent({ name: 'writer', instructions: 'Write one line.' });
    const store = SqliteRunStore.open({ path: join(dir, 'runs.db') });
    const engine = new WorkflowEngine({ agents: [writer], modelProvider: providerFor(model, { stream: true }), store, logger: quietLogger() });
    const coordinator = await createCoordinator({ engine, store, agents: [writer], logger: quietLogger() });
    const client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
    try {
      await callUnary(client, 'createWorkflow', { document: 'id: note\nsteps:\n  - id: write\n    agent: writer\n    message: write it\n' });
      const run = await callUnary(client, 'startRun', { workflow: 'workflows/note', tokenBudget: '5000', recordModelResponses: true });
      const { messages } = await collectStream(client, 'watchRun', { name: run.name });
      expect(messages.at(-1)).toMatchObject({ runFinished: { status: 'RUN_STATUS_COMPLETED' } });
      expect(messages[0]).toMatchObject({ runStarted: { tokenBudget: '5000' } });
      const deltas = messages.filter((m) => m.event === 'stepOutputDelta').map((m) => m.stepOutputDelta as Msg);
      expect(deltas.map((d) => d.text).join('')).toBe(text);
      expect(deltas[0]).toMatchObject({ path: 'write', attempt: 1, turn: 1, agent: 'writer' });
      const responded = messages.filter((m) => m.event === 'modelResponded').map((m) => m.modelResponded as Msg);
      expect(responded).toHaveLength(1);
      expect(responded[0]).toMatchObject({ path: 'write', turn: 1, agent: 'writer', model: 'test-model' });
      expect(fromProtoStruct(responded[0]!.response as ProtoStruct)).toEqual({ content: text, usage: { promptTokens: 40, completionTokens: 6 } });
      // The deltas come before the recorded response, which comes before the step's result.
      const order = messages.map((m) => m.event);
      expect(order.lastIndexOf('stepOutputDelta')).toBeLessThan(order.indexOf('modelResponded'));
      expect(order.indexOf('modelResponded')).toBeLessThan(order.indexOf('stepFinished'));

      await model.close();
      const replay = await callUnary(client, 'startRun', { workflow: 'workflows/note', replayModelResponsesFrom: run.name });
      const { messages: replayed } = await collectStream(client, 'watchRun', { name: replay.name });
      expect(replayed.at(-1)).toMatchObject({ runFinished: { status: 'RUN_STATUS_COMPLETED' } });
      const finished = replayed.find((m) => m.event === 'stepFinished')!.stepFinished as Msg;
      expect(JSON.stringify(finished.output)).toContain(text);

      const missing = await expectFailure(callUnary(client, 'startRun', { workflow: 'workflows/note', replayModelResponsesFrom: 'runs/nope' }));
      expect(missing.code).toBe(status.NOT_FOUND);
      expect(richStatusOf(missing).fieldViolations?.[0]?.field).toBe('replay_model_responses_from');
      const badBudget = await expectFailure(callUnary(client, 'startRun', { workflow: 'workflows/note', tokenBudget: '-1' }));
      expect(badBudget.code).toBe(status.INVALID_ARGUMENT);
      expect(richStatusOf(badBudget).fieldViolations?.[0]?.field).toBe('token_budget');
    } finally {
      client.close();
      await coordinator.close(500);
      await engine.close();
      await store.close();
      await model.close();
    }
  });
});
