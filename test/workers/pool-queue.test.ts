/**
 * The engine's own pool queue (src/engine/pool-executor.ts): tasks wait here for a free thread, so a task
 * cancelled or timed out while waiting never reaches a thread and frees its place, and closing the
 * engine fails the waiting ones with POOL_CLOSED. Every task's wait is reported (for metrics).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode, Tool, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine } from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';

const tool = new Tool({ name: 'ledger_sleep', module: new URL('../fixtures/tools/ledger-sleep.ts', import.meta.url) });
const dir = mkdtempSync(join(tmpdir(), 'jaf-pool-queue-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function oneStep(label: string, ledger: string, ms: number, timeoutSeconds?: number) {
  const step = new ToolStep('s', tool, { ledger, label, ms });
  return new WorkflowBuilder(`q-${label}`).addStep(timeoutSeconds === undefined ? step : step.withTimeout(timeoutSeconds)).build();
}

const ran = (ledger: string) => (existsSync(ledger) ? readFileSync(ledger, 'utf8').trim().split('\n') : []);

describe('the pool queue', () => {
  it('a task that times out or is cancelled while waiting never runs; the next waiting task gets the thread', async () => {
    const waits: number[] = [];
    const engine = new WorkflowEngine({ tools: [tool], pool: { maxThreads: 1, onWait: (s) => waits.push(s) }, logger: quietLogger() });
    const ledger = join(dir, 'waiting.log');
    try {
      const ctx = new WorkflowContext({ workflowId: 'q' });
      const busy = engine.executeWorkflow(oneStep('busy', ledger, 400), ctx);
      await expect.poll(() => ran(ledger)).toEqual(['busy']);
      const timedOut = engine.executeWorkflow(oneStep('timed_out', ledger, 10, 0.1), ctx);
      const cancelling = new AbortController();
      const cancelled = engine.executeWorkflow(oneStep('cancelled', ledger, 10), ctx, { signal: cancelling.signal });
      const last = engine.executeWorkflow(oneStep('last', ledger, 10), ctx);
      setTimeout(() => cancelling.abort(), 50);
      const [busyResult, timedOutResult, cancelledResult, lastResult] = await Promise.all([busy, timedOut, cancelled, last]);
      expect(busyResult.status).toBe('completed');
      expect(timedOutResult.steps[0]!.error?.code).toBe(ErrorCode.TIMEOUT);
      expect(cancelledResult.status).toBe('cancelled');
      expect(lastResult.status).toBe('completed');
      expect(ran(ledger)).toEqual(['busy', 'last']);
      // busy went straight to the thread; last waited for busy to finish.
      expect(waits[0]).toBe(0);
      expect(waits.at(-1)!).toBeGreaterThan(0.2);
      expect(engine.poolStats()?.inFlight).toBe(0);
    } finally {
      await engine.close();
    }
  });

  it('closing the engine fails the waiting tasks with POOL_CLOSED; they never run', async () => {
    const engine = new WorkflowEngine({ tools: [tool], pool: { maxThreads: 1 }, logger: quietLogger() });
    const ledger = join(dir, 'closing.log');
    const ctx = new WorkflowContext({ workflowId: 'q' });
    const busy = engine.executeWorkflow(oneStep('busy', ledger, 5000), ctx);
    await expect.poll(() => ran(ledger)).toEqual(['busy']);
    const waiting = engine.executeWorkflow(oneStep('waiting', ledger, 10), ctx);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await engine.close();
    const [busyResult, waitingResult] = await Promise.all([busy, waiting]);
    expect(waitingResult.steps[0]!.error?.code).toBe(ErrorCode.POOL_CLOSED);
    expect(busyResult.status).toBe('failed');
    expect(ran(ledger)).toEqual(['busy']);
  });
});
