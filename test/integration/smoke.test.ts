import { describe, expect, it } from 'vitest';
import { quietLogger } from '../helpers/logging.ts';
import { ParallelStep, Tool, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine } from 'jaf-workflows';

describe('smoke', () => {
  it('runs pool branches on different threads', async () => {
    const threadId = new Tool({ name: 'thread_id', module: new URL('../fixtures/tools/thread-id.ts', import.meta.url) });
    const engine = new WorkflowEngine({ tools: [threadId], pool: { maxThreads: 2 }, logger: quietLogger() });
    try {
      const wf = new WorkflowBuilder('smoke')
        .addStep(new ParallelStep('par').addBranch(new ToolStep('a', 'thread_id', { n: 1 })).addBranch(new ToolStep('b', 'thread_id', { n: 2 })))
        .build();
      const result = await engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'w' }));
      expect(result.status).toBe('completed');
      const h1 = result.context.get<number>('h1');
      const h2 = result.context.get<number>('h2');
      expect(typeof h1).toBe('number');
      expect(h1).not.toBe(h2);
    } finally {
      await engine.close();
    }
  });
});
