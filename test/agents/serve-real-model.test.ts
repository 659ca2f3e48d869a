/**
 * `jafw serve` pointed at an OpenAI-compatible endpoint by environment variables alone (OPENAI_BASE_URL,
 * OPENAI_API_KEY, JAF_MODEL): the e-commerce YAML runs over gRPC and its agent steps call the local Chat
 * Completions server, which sees the model, the key and the agents' instructions.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { connect } from '../../src/cli/client.ts';
import { main } from '../../src/cli/main.ts';
import { startServer, type Server } from '../../src/cli/serve.ts';
import { toProtoStruct } from '../../src/grpc/proto.ts';
import { ChatCompletionsServer, systemPrompt, type RecordedRequest, type ScriptedReply } from '../support/chat-completions-server.ts';
import { quietLogger } from '../helpers/logging.ts';

const dir = mkdtempSync(join(tmpdir(), 'jaf-real-model-'));
let model: ChatCompletionsServer;
let server: Server;
const silent = { stdout: { write: () => true }, stderr: { write: () => true } };

/** Answers as each of the example's agents would, keyed by its instructions. */
function answer(request: RecordedRequest): ScriptedReply {
  const system = systemPrompt(request);
  if (system.includes('fulfillment agent')) return { kind: 'message', content: JSON.stringify({ final_notification: 'Your order ships today.' }), usage: { prompt_tokens: 50, completion_tokens: 9 } };
  if (system.includes('inventory agent')) return { kind: 'message', content: JSON.stringify({ backordered_skus: [], inventory_message: 'All in stock.' }) };
  return { kind: 'message', content: JSON.stringify({ validation_resolution: 'rejected', validation_message: 'Sorry.' }) };
}

beforeAll(async () => {
  model = await ChatCompletionsServer.start(Array.from({ length: 20 }, () => answer));
  const env = { OPENAI_BASE_URL: model.baseURL, OPENAI_API_KEY: 'sk-test-key', JAF_MODEL: 'test-model' };
  server = await startServer({ host: '127.0.0.1', port: 0, db: join(dir, 'runs.db'), metricsPort: 0, env, logger: quietLogger() }, silent);
});

afterAll(async () => {
  await server?.close();
  await model?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('jafw serve with a real OpenAI-compatible endpoint', () => {
  it('runs the e-commerce YAML; the agent step calls the endpoint with the model, key and instructions', async () => {
    const conn = connect(server.address, undefined);
    try {
      const document = readFileSync(new URL('../../examples/order-processing.yaml', import.meta.url), 'utf8');
      const workflow = await conn.unary('createWorkflow', { document });
      const variables = JSON.parse(readFileSync(new URL('../../examples/order.json', import.meta.url), 'utf8')) as Record<string, unknown>;
      const events: Record<string, unknown>[] = [];
      await conn.stream('executeWorkflow', { run: { workflow: workflow.name, variables: toProtoStruct(variables) } }, (event) => events.push(event));
      expect(events.at(-1)).toMatchObject({ event: 'runFinished', runFinished: { status: 'RUN_STATUS_COMPLETED' } });
      const fulfillment = events.find((e) => e.event === 'stepFinished' && (e.stepFinished as { stepId: string }).stepId === 'fulfillment_agent');
      expect(JSON.stringify(fulfillment)).toContain('Your order ships today.');
    } finally {
      conn.close();
    }
    const requests = model.requests;
    expect(requests.length).toBeGreaterThan(0);
    const last = requests.find((r) => systemPrompt(r).includes('fulfillment agent'))!;
    expect(last.body?.model).toBe('test-model');
    expect(last.headers.authorization).toBe('Bearer sk-test-key');
    expect(last.body?.response_format?.type).toBe('json_schema');
    const metrics = await (await fetch(server.metricsUrl!)).text();
    expect(metrics).toMatch(/jaf_model_tokens_total\{model="test-model",agent="fulfillment_agent",type="prompt"\} 50/);
  });

  it('jafw run --record, then --replay-from with the model endpoint gone: the same run, no request', async () => {
    const cli = async (...argv: string[]) => {
      let out = '';
      let err = '';
      const code = await main(argv, { stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (err += t) }, env: { JAFW_ADDRESS: server.address } });
      return { code, out, err };
    };
    const yaml = fileURLToPath(new URL('../../examples/order-processing.yaml', import.meta.url));
    const input = `@${fileURLToPath(new URL('../../examples/order.json', import.meta.url))}`;
    const recorded = await cli('run', yaml, '--input', input, '--record', '--token-budget', '100000');
    expect(recorded.err).toBe('');
    expect(recorded.code).toBe(0);
    expect(recorded.out).toMatch(/● fulfillment_agent model call 1 recorded \(fulfillment_agent, test-model\)/);
    const runId = /run (runs\/\S+) started/.exec(recorded.out)![1]!;
    const requestsBefore = model.requests.length;
    await model.close();
    const replayed = await cli('run', yaml, '--input', input, '--replay-from', runId);
    expect(replayed.code).toBe(0);
    expect(replayed.out).toContain('Final status: completed');
    expect(model.requests.length).toBe(requestsBefore);
    const both = await cli('run', yaml, '--record', '--replay-from', runId);
    expect(both.code).toBe(2);
  });
});
