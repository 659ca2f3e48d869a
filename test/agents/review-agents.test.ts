/**
 * Review regressions for agent steps: a timeout while one of its tool calls is still running (nothing
 * of the step may follow its result), and replaying a recording whose first attempt failed.
 */
import { describe, expect, it } from 'vitest';
import { Agent, AgentStep, ErrorCode, Tool, type RunEvent } from 'jaf-workflows';
import { callTools } from '../support/chat-completions-server.ts';
import { closeAfterEach, engineWith, providerFor, runStep, startServer } from './support.ts';

closeAfterEach();

describe('agent step timeout during a tool call', () => {
  it('no event of the step follows its result', async () => {
    let toolStarted!: () => void;
    const started = new Promise<void>((resolve) => (toolStarted = resolve));
    const slow = new Tool({
      name: 'slow',
      execute: (_args: Record<string, unknown>, ctx) =>
        new Promise((_resolve, reject) => {
          toolStarted();
          // Gives up a little after the abort, as a real tool cleaning up would.
          ctx.signal.addEventListener('abort', () => setTimeout(() => reject(new Error('stopped')), 50), { once: true });
        }),
    });
    const agent = new Agent({ name: 'worker', instructions: 'work', tools: [slow], maxTurns: 3 });
    const server = await startServer(callTools({ id: 'c1', name: 'slow', arguments: {} }));
    const engine = engineWith({ agents: [agent], modelProvider: providerFor(server) });
    const { events, step } = await runStep(engine, new AgentStep('work', 'worker', 'go').withTimeout(0.3));
    await started;
    // Lets the tool's late settling happen before looking.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(step.error?.code).toBe(ErrorCode.TIMEOUT);
    const stepEnd = events.findIndex((e: RunEvent) => e.type === 'step_failed' && e.path === 'work');
    expect(stepEnd).toBeGreaterThan(-1);
    const after = events.slice(stepEnd + 1).filter((e) => 'path' in e && typeof e.path === 'string' && e.path.startsWith('work'));
    expect(after.map((e) => `${e.type} ${'path' in e ? String(e.path) : ''}`)).toEqual([]);
    const runEnd = events.findIndex((e) => e.type === 'run_failed' || e.type === 'run_completed' || e.type === 'run_cancelled');
    expect(runEnd).toBeGreaterThan(stepEnd);
    expect(events.slice(runEnd + 1)).toEqual([]);
  });
});

describe('replaying a run whose model failed once (review)', () => {
  it('a recording whose first attempt met a transient model error replays to the same result', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { SqliteRunStore, WorkflowBuilder, WorkflowContext } = await import('jaf-workflows');
    const { answer } = await import('../support/chat-completions-server.ts');
    const dir = mkdtempSync(join(tmpdir(), 'jaf-review-replay-'));
    const store = SqliteRunStore.open({ path: join(dir, 'replay.db') });
    try {
      const writer = new Agent({ name: 'writer', instructions: 'Write one line.' });
      const server = await startServer({ kind: 'json', status: 503, body: { error: { message: 'busy', type: 'server_error' } } }, answer('one line'));
      const engine = engineWith({ agents: [writer], modelProvider: providerFor(server), store });
      const step = new AgentStep('write', 'writer', 'go').withRetry({ maxAttempts: 2, initialDelaySeconds: 0.001, maxDelaySeconds: 0.002 });
      const workflow = new WorkflowBuilder('flaky').addStep(step).build();
      const recorded = await engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'flaky' }), { recordModelResponses: true, runId: 'flaky-recorded' });
      expect(recorded.status).toBe('completed');
      expect(recorded.steps[0]!.attempts).toBe(2);
      const replayed = await engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'flaky' }), { replayModelResponsesFrom: 'flaky-recorded' });
      expect(replayed.steps[0]!.error).toBeUndefined();
      expect(replayed.status).toBe('completed');
      expect(replayed.finalOutput).toEqual(recorded.finalOutput);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
