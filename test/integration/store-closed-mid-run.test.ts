/**
 * A store that fails under a running run (closed here; a full disk behaves the same): the run's promise
 * rejects with the store's error, and no other promise is left rejected and unhandled (which would end
 * a coordinator process).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteRunStore, Tool, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine } from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';

const dir = mkdtempSync(join(tmpdir(), 'jaf-closed-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a store failing under a run', () => {
  it('rejects the run with the store error and leaves no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const store = SqliteRunStore.open({ path: join(dir, 'runs.db') });
      let open!: () => void;
      const gate = new Tool({ name: 'gate', execute: () => new Promise((resolve) => (open = () => resolve({ ok: true }))) });
      const engine = new WorkflowEngine({ tools: [gate], store, logger: quietLogger() });
      const workflow = new WorkflowBuilder('w').addStep(new ToolStep('a', 'gate')).addStep(new ToolStep('b', 'gate')).build();
      const run = engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'closed' }));
      await expect.poll(() => open).toBeDefined();
      await store.close();
      open();
      await expect(run).rejects.toMatchObject({ code: 'STORE_WRITE_FAILED' });
      await new Promise((resolve) => setTimeout(resolve, 50));
      await engine.close();
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
