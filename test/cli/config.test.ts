/**
 * `jafw serve --config`: agents and module tools registered from a YAML file, referenced by name from a
 * declarative workflow, with the agent running against a real local Chat Completions server and its tool
 * on the pool. Bad files fail before anything opens, naming the path of the problem.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.ts';
import { loadCoordinatorConfig } from '../../src/cli/config.ts';
import { UsageError } from '../../src/cli/io.ts';
import { startServer } from '../../src/cli/serve.ts';
import { builtinTools } from '../../src/tools/builtin.ts';
import { toProtoStruct } from '../../src/grpc/proto.ts';
import { ChatCompletionsServer, systemPrompt, type RecordedRequest, type ScriptedReply } from '../support/chat-completions-server.ts';
import { quietLogger } from '../helpers/logging.ts';

const dir = mkdtempSync(join(tmpdir(), 'jafw-config-'));
const silent = { stdout: { write: () => true }, stderr: { write: () => true } };
let model: ChatCompletionsServer;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const CONFIG = `
tools:
  - name: word_count
    module: ./word-count.mjs
    description: Counts the words of a text
    parameters: { type: object, properties: { text: { type: string } }, required: [text] }
agents:
  - name: summarizer
    instructions: You summarise support tickets in one sentence.
    model: summary-model
    tools: [word_count, echo]
    outputSchema: { type: object, properties: { summary: { type: string }, words: { type: integer } }, required: [summary, words] }
    maxTurns: 4
`;

beforeAll(async () => {
  file('word-count.mjs', 'export default function wordCount(args) { return { words: args.text.split(/\\s+/).filter(Boolean).length }; }\n');
  model = await ChatCompletionsServer.start();
});

afterAll(async () => {
  await model?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('jafw serve --config', () => {
  it('registers agents and module tools that a YAML workflow names; the agent calls its pool tool through the model', async () => {
    let toolResult: string | undefined;
    model.script(
      { kind: 'message', content: null, toolCalls: [{ id: 'c1', name: 'word_count', arguments: { text: 'my order never arrived' } }] },
      (request: RecordedRequest): ScriptedReply => {
        toolResult = request.body?.messages.find((m) => m.role === 'tool')?.content ?? undefined;
        return { kind: 'message', content: JSON.stringify({ summary: 'A missing order.', words: 4 }) };
      },
    );
    const server = await startServer(
      {
        host: '127.0.0.1',
        port: 0,
        db: join(dir, 'runs.db'),
        config: file('jafw.yaml', CONFIG),
        env: { OPENAI_BASE_URL: model.baseURL, OPENAI_API_KEY: 'k' },
        logger: quietLogger(),
      },
      silent,
    );
    const conn = connect(server.address, undefined);
    try {
      const tools = (await conn.unary('listTools', {})).tools as { name: string; runsInPool: boolean }[];
      expect(tools.find((t) => t.name === 'word_count')).toMatchObject({ runsInPool: true });
      const workflow = await conn.unary('createWorkflow', {
        document: 'id: triage\nsteps:\n  - id: summarize\n    agent: summarizer\n    input: vars.ticket\n',
      });
      const events: Record<string, unknown>[] = [];
      await conn.stream('executeWorkflow', { run: { workflow: workflow.name, variables: toProtoStruct({ ticket: 'my order never arrived' }) } }, (e) => events.push(e));
      expect(events.at(-1)).toMatchObject({ runFinished: { status: 'RUN_STATUS_COMPLETED' } });
      expect(JSON.stringify(events)).toContain('A missing order.');
    } finally {
      conn.close();
      await server.close();
    }
    const first = model.requests[0]!;
    expect(systemPrompt(first)).toBe('You summarise support tickets in one sentence.');
    expect(first.body?.model).toBe('summary-model');
    expect(first.body?.tools?.map((t) => t.function.name)).toEqual(['word_count', 'echo']);
    expect(JSON.parse(toolResult!)).toEqual({ status: 'executed', result: { words: 4 } });
  });

  it('names the path of each problem, before anything is opened', () => {
    const available = builtinTools();
    const cases: [string, RegExp][] = [
      ['agents:\n  - name: a\n    instructions: x\n    colour: red\n', /\/agents\/0: unknown field colour/],
      ['agents:\n  - name: a\n', /\/agents\/0: missing field instructions/],
      ['agents:\n  - name: a\n    instructions: x\n    tools: [echo, nope]\n', /\/agents\/0\/tools\/1: no tool named nope/],
      ['agents:\n  - name: a\n    instructions: x\n    handoffs: [ghost]\n', /\/agents\/0\/handoffs\/0: no agent named ghost/],
      ['agents:\n  - name: a\n    instructions: x\n  - name: a\n    instructions: y\n', /\/agents\/1\/name: an agent named a is already registered/],
      ['tools:\n  - name: echo\n    module: ./x.js\n', /\/tools\/0\/name: a tool named echo is already registered/],
      ['agents:\n  - name: a\n    instructions: x\n    maxTurns: 0\n', /\/agents\/0\/maxTurns: must be >= 1/],
      ['agents: [\n', /not valid YAML/],
    ];
    for (const [text, expected] of cases) {
      const path = file('bad.yaml', text);
      expect(() => loadCoordinatorConfig(path, available)).toThrow(UsageError);
      expect(() => loadCoordinatorConfig(path, available)).toThrow(expected);
    }
    expect(() => loadCoordinatorConfig(join(dir, 'missing.yaml'), available)).toThrow(/cannot read/);
  });
});

describe('per-agent endpoints in the configuration', () => {
  it('an agent with its own baseURL and apiKeyEnv calls that endpoint with that key; the key must be set', async () => {
    const own = await ChatCompletionsServer.start([{ kind: 'message', content: JSON.stringify({ summary: 'own endpoint', words: 2 }) }]);
    try {
      const text = `agents:\n  - name: remote\n    instructions: Be brief.\n    model: remote-model\n    baseURL: ${own.baseURL}\n    apiKeyEnv: REMOTE_KEY\n`;
      const path = file('remote.yaml', text);
      expect(() => loadCoordinatorConfig(path, builtinTools(), [], {})).toThrow(/\/agents\/0\/apiKeyEnv: the environment variable REMOTE_KEY is not set/);
      const { agents } = loadCoordinatorConfig(path, builtinTools(), [], { REMOTE_KEY: 'sk-remote' });
      const response = await agents[0]!.modelProvider!.getCompletion({
        agent: agents[0]!,
        model: agents[0]!.model,
        messages: [{ role: 'user', content: 'hi' }],
        tools: [],
        outputSchema: undefined,
        signal: new AbortController().signal,
      });
      expect(response.message.content).toContain('own endpoint');
      expect(own.requests[0]!.headers.authorization).toBe('Bearer sk-remote');
      expect(own.requests[0]!.body?.model).toBe('remote-model');
    } finally {
      await own.close();
    }
  });
});
