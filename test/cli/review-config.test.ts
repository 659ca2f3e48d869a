/**
 * Review regression: an agent with its own endpoint (baseURL) and no `model` uses JAF_MODEL from the
 * environment, as the coordinator's provider does and as the "no model" error tells the operator to set.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCoordinatorConfig } from '../../src/cli/config.ts';
import { builtinTools } from '../../src/tools/builtin.ts';
import { ChatCompletionsServer } from '../support/chat-completions-server.ts';

const dir = mkdtempSync(join(tmpdir(), 'jafw-review-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('per-agent endpoint without a model (review)', () => {
  it('asks for the JAF_MODEL of the environment', async () => {
    const own = await ChatCompletionsServer.start([{ kind: 'message', content: 'hello' }]);
    try {
      const path = join(dir, 'no-model.yaml');
      writeFileSync(path, `agents:\n  - name: remote\n    instructions: Be brief.\n    baseURL: ${own.baseURL}\n`);
      const { agents } = loadCoordinatorConfig(path, builtinTools(), [], { JAF_MODEL: 'env-model' });
      const agent = agents[0]!;
      const response = await agent.modelProvider!.getCompletion({
        agent,
        model: agent.model,
        messages: [{ role: 'user', content: 'hi' }],
        tools: [],
        outputSchema: undefined,
        signal: new AbortController().signal,
      });
      expect(response.message.content).toBe('hello');
      expect(own.requests[0]!.body?.model).toBe('env-model');
    } finally {
      await own.close();
    }
  });
});
