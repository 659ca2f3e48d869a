/**
 * Regression tests for the findings of a code review of the engine: each failed before its fix.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import {
  Agent,
  AgentStep,
  builtinTools,
  ConditionalStep,
  LoopStep,
  NonRetryableError,
  ParallelStep,
  ScriptedModelProvider,
  textReply,
  Tool,
  toolCallReply,
  ToolStep,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowEngine,
  WorkflowLogger,
  type ModelProvider,
  type StepResult,
  type WorkflowResult,
} from 'jaf-workflows';
import { logSink, quietLogger } from '../helpers/logging.ts';
import { aborted, deferred, eventCollector, findStep, recordingClock, within } from './support.ts';

const engines: WorkflowEngine[] = [];
function newEngine(options: ConstructorParameters<typeof WorkflowEngine>[0] = {}): WorkflowEngine {
  const engine = new WorkflowEngine({ logger: quietLogger(), clock: recordingClock(), pool: { maxThreads: 1 }, ...options });
  engines.push(engine);
  return engine;
}
afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
});

const ctx = (variables: Record<string, unknown> = {}, userContext?: unknown) => new WorkflowContext({ workflowId: 'review', variables, userContext });
const ok = new Tool({ name: 'ok', execute: () => ({ done: true }) });
const silentPino = () => pino({ level: 'silent' });

describe('user functions cannot wedge a run', () => {
  it('a params function that never settles is still bounded by the step timeout', async () => {
    const gate = deferred<unknown>();
    const wf = new WorkflowBuilder('wf-hung-params')
      .addStep(new ToolStep('call', ok).withParamsFunction(() => gate.promise).withTimeout(0.1))
      .build();
    const running = newEngine().executeWorkflow(wf, ctx());
    try {
      const result = await within(running, 3000, 'run with a hung params function');
      expect(result.status).toBe('failed');
      expect(result.error?.code).toBe('TIMEOUT');
    } finally {
      gate.resolve({});
      await running;
    }
  });

  it('cancelling a run ends it even while a condition is pending', async () => {
    const gate = deferred<boolean>();
    const asked = deferred();
    const abort = new AbortController();
    const wf = new WorkflowBuilder('wf-hung-condition')
      .addStep(
        new ConditionalStep('route')
          .condition(() => {
            asked.resolve();
            return gate.promise;
          })
          .ifTrue(new ToolStep('t', ok)),
      )
      .build();
    const running = newEngine().executeWorkflow(wf, ctx(), { signal: abort.signal });
    await asked.promise;
    abort.abort();
    try {
      const result = await within(running, 3000, 'cancelled run with a pending condition');
      expect(result.status).toBe('cancelled');
    } finally {
      gate.resolve(false);
      await running;
    }
  });
});

describe('a throwing WorkflowLogger override', () => {
  it('does not reject executeWorkflow (logging is an observer, not part of the run)', async () => {
    class Broken extends WorkflowLogger {
      override logStepStart(): void {
        throw new Error('log transport down');
      }
    }
    const engine = newEngine({ logger: new Broken({ logger: silentPino() }) });
    const wf = new WorkflowBuilder('wf-broken-logger').addStep(new ToolStep('a', ok)).build();
    const result = await engine.executeWorkflow(wf, ctx());
    expect(result.status).toBe('completed');
  });

  it('in one parallel branch changes nothing: both branches complete and the run completes', async () => {
    class BrokenForFast extends WorkflowLogger {
      override logStepComplete(stepName: string): void {
        if (stepName === 'fast') throw new Error('log transport down');
      }
    }
    const fastDone = deferred();
    const slow = new Tool({
      name: 'slow',
      execute: async () => {
        await fastDone.promise;
        return { slow: 1 };
      },
    });
    const fast = new Tool({ name: 'fast', execute: () => ({ fast: 1 }) });
    const engine = newEngine({ logger: new BrokenForFast({ logger: silentPino() }) });
    const wf = new WorkflowBuilder('wf-orphan').addStep(new ParallelStep('par').addBranch(new ToolStep('slow', slow)).addBranch(new ToolStep('fast', fast))).build();
    const events = eventCollector();
    const running = engine.executeWorkflow(wf, ctx(), {
      onEvent: (event) => {
        events.onEvent(event);
        if (event.type === 'step_completed' && event.path === 'par/fast') fastDone.resolve();
      },
    });
    const result = await within(running, 3000, 'run');
    expect(result.status).toBe('completed');
    expect(result.context.variables).toMatchObject({ slow: 1, fast: 1 });
  });
});

describe('streaming', () => {
  it('a throwing onEvent listener does not make executeWorkflowStream drop step results', async () => {
    const engine = newEngine();
    const wf = new WorkflowBuilder('wf-stream').addStep(new ToolStep('a', ok)).addStep(new ToolStep('b', ok)).build();
    const stream = engine.executeWorkflowStream(wf, ctx(), {
      onEvent: () => {
        throw new Error('listener bug');
      },
    });
    const streamed: string[] = [];
    for await (const step of stream) streamed.push(step.path);
    const result = await stream.result;
    expect(result.steps.map((s) => s.path)).toEqual(['a', 'b']);
    expect(streamed).toEqual(['a', 'b']);
  });
});

describe('engine closed while a run is in flight', () => {
  it('a later pool step fails with POOL_CLOSED, not INTERNAL', async () => {
    const engine = newEngine({ tools: builtinTools() });
    const started = deferred();
    const gate = deferred();
    const first = new Tool({
      name: 'first',
      execute: async () => {
        started.resolve();
        await gate.promise;
        return { first: true };
      },
    });
    const wf = new WorkflowBuilder('wf-close').addStep(new ToolStep('first', first)).addStep(new ToolStep('pooled', 'echo', { message: 'hi' })).build();
    const running = engine.executeWorkflow(wf, ctx());
    await started.promise;
    await engine.close();
    gate.resolve();
    const result = await running;
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('POOL_CLOSED');
  });
});

describe('replay of recorded composite steps', () => {
  it('a retried parallel does not call a completed conditional branch predicate again, and keeps its writes', async () => {
    let predicateCalls = 0;
    const aDone = deferred();
    const setter = (name: string, out: Record<string, unknown>) =>
      new Tool({
        name,
        execute: () => {
          if (name === 'set_a') aDone.resolve();
          return out;
        },
      });
    let flakyCalls = 0;
    const flaky = new Tool({
      name: 'flaky',
      execute: async () => {
        flakyCalls += 1;
        if (flakyCalls === 1) {
          await aDone.promise;
          throw new Error('transient');
        }
        return { flaky: 'ok' };
      },
    });
    const route = new ConditionalStep('route')
      .condition(() => {
        predicateCalls += 1;
        return predicateCalls === 1; // e.g. an A/B flag or a time-based rule
      })
      .ifTrue(new ToolStep('a', setter('set_a', { routed: 'a' })))
      .ifFalse(new ToolStep('b', setter('set_b', { routed: 'b' })));
    const par = new ParallelStep('par').addBranch(route).addBranch(new ToolStep('f', flaky)).withRetry({ maxRetries: 1 });
    const result = await newEngine().executeWorkflow(new WorkflowBuilder('wf-replay').addStep(par).build(), ctx());
    expect(result.status).toBe('completed');
    expect(findStep(result, 'par/route').status).toBe('completed');
    // The recorded branch wrote { routed: 'a' }; the rebuilt context must still hold it.
    expect(result.context.variables).toMatchObject({ routed: 'a', flaky: 'ok' });
    expect(predicateCalls).toBe(1);
  });
});

describe('WorkflowLogger per-run child cache', () => {
  it('is not left behind (and reused) when a subclass overrides logWorkflowComplete', async () => {
    const sink = logSink('info');
    class Summary extends WorkflowLogger {
      override logWorkflowComplete(result: WorkflowResult): void {
        this.log.info({ summary: result.status }, 'done');
      }
    }
    const logger = new Summary({ logger: sink.pino });
    const engine = newEngine({ logger });
    await engine.executeWorkflow(new WorkflowBuilder('first').addStep(new ToolStep('a', ok)).build(), ctx(), { runId: 'run-1' });
    await engine.executeWorkflow(new WorkflowBuilder('second').addStep(new ToolStep('a', ok)).build(), ctx(), { runId: 'run-1' });
    const started = sink.lines.find((l) => l.msg === 'workflow second started');
    expect(started?.workflowId).toBe('second');
  });
});

describe('JSON Schemas', () => {
  it('two tools may use parameter schemas with the same $id (e.g. a tool factory called twice)', () => {
    const schema = () => ({ $id: 'https://example.com/schemas/order-args', type: 'object', properties: { id: { type: 'string' } } });
    const make = (name: string) => new Tool({ name, parameters: schema(), execute: () => 1 });
    make('lookup_v1');
    expect(() => make('lookup_v2')).not.toThrow();
  });
});

describe('agents', () => {
  const recorded: unknown[] = [];
  const who = new Tool({
    name: 'who',
    execute: (_args, toolCtx) => {
      recorded.push(toolCtx.userContext);
      return { ok: true };
    },
  });
  const agent = new Agent({ name: 'helper', instructions: 'help', tools: [who] });
  const script = () => new ScriptedModelProvider([toolCallReply([{ name: 'who', arguments: {} }]), textReply('done')]);

  it("withContextFunction's value is what the agent's tools see as context (README: 'instructions and tools')", async () => {
    recorded.length = 0;
    const engine = newEngine({ modelProvider: script() });
    const step = new AgentStep('ask', agent, 'hi').withContextFunction(() => ({ tenant: 'from-context-fn' }));
    const result = await engine.executeWorkflow(new WorkflowBuilder('wf-agent-ctx').addStep(step).build(), ctx({}, { tenant: 'run' }));
    expect(result.status).toBe('completed');
    expect(recorded).toEqual([{ tenant: 'from-context-fn' }]);
  });

  it("an agent's tool call is an execution with events at its path (README: 'support/1.0:lookup_order ... results, events ... hang off it')", async () => {
    const engine = newEngine({ modelProvider: script() });
    const events = eventCollector();
    const result = await engine.executeWorkflow(new WorkflowBuilder('wf-agent-events').addStep(new AgentStep('ask', agent, 'hi')).build(), ctx(), {
      onEvent: events.onEvent,
    });
    expect(result.status).toBe('completed');
    const paths = events.events.filter((e) => 'path' in e).map((e) => (e as { path: string }).path);
    // {agent step}/{attempt}.{turn}.{call}:{tool}
    expect(paths).toContain('ask/1.1.0:who');
    const call = findStep(result, 'ask').children.find((c) => c.path === 'ask/1.1.0:who');
    expect(call).toMatchObject({ kind: 'tool', status: 'completed', output: { ok: true } });
  });

  it('a malformed model response is MODEL_ERROR (a provider fault), not INTERNAL (an engine bug)', async () => {
    const provider: ModelProvider = { getCompletion: async () => ({}) as never };
    const engine = newEngine({ modelProvider: provider });
    const result = await engine.executeWorkflow(new WorkflowBuilder('wf-bad-model').addStep(new AgentStep('ask', agent, 'hi')).build(), ctx());
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('MODEL_ERROR');
  });

  it('an agent step without input over variables JSON cannot hold is a user-data error, not INTERNAL', async () => {
    const engine = newEngine({ modelProvider: script() });
    const result = await engine.executeWorkflow(new WorkflowBuilder('wf-bigint').addStep(new AgentStep('ask', agent)).build(), ctx({ big: 10n }));
    expect(result.status).toBe('failed');
    expect(result.error?.code).not.toBe('INTERNAL');
  });
});

describe('error classification', () => {
  it("a tool's own error whose code is 'CANCELLED' fails the run; it does not mark it cancelled", async () => {
    const upstream = new Tool({
      name: 'upstream',
      execute: () => {
        throw new NonRetryableError('the upstream order was cancelled', { code: 'CANCELLED' });
      },
    });
    const wf = new WorkflowBuilder('wf-code').addStep(new ToolStep('call', upstream)).addStep(new ToolStep('after', ok)).build();
    const result = await newEngine().executeWorkflow(wf, ctx());
    const step: StepResult = result.steps[0]!;
    expect(step.status).toBe('failed');
    expect(result.status).toBe('failed');
  });
});

describe('context isolation', () => {
  it('a parallel branch cannot change what its sibling sees through a nested variable (invariant 8)', async () => {
    let seenByB: unknown;
    const par = new ParallelStep('par')
      .addBranch(
        new ToolStep('a', ok).withParamsFunction((c) => {
          c.get<{ tags: string[] }>('order').tags.push('from-a');
          return {};
        }),
      )
      .addBranch(
        new ToolStep('b', ok).withParamsFunction((c) => {
          seenByB = [...c.get<{ tags: string[] }>('order').tags];
          return {};
        }),
      )
      .withFailurePolicy('continue_on_partial_failure');
    await newEngine().executeWorkflow(new WorkflowBuilder('wf-isolation').addStep(par).build(), ctx({ order: { tags: [] } }));
    expect(seenByB).toEqual([]);
  });
});

describe('engine options', () => {
  it('defaultStepTimeoutSeconds must be a finite number of seconds within the limit (setTimeout would fire at once otherwise)', () => {
    expect(() => new WorkflowEngine({ defaultStepTimeoutSeconds: Number.POSITIVE_INFINITY })).toThrow(/defaultStepTimeoutSeconds must be in \(0, 86400\]/);
    expect(() => new WorkflowEngine({ defaultStepTimeoutSeconds: 30 * 86_400 })).toThrow(RangeError);
    expect(() => new WorkflowEngine({ maxOutputBytes: 0 })).toThrow(/maxOutputBytes/);
    expect(() => new WorkflowEngine({ maxHandlerRetries: -1 })).toThrow(/maxHandlerRetries/);
  });
});

describe("a composite step's own timeout", () => {
  /** Waits for its signal, then settles as aborted (a well-behaved tool). */
  const polite = new Tool({
    name: 'polite',
    execute: async (_args, toolCtx) => {
      await aborted(toolCtx.signal);
      throw new Error('aborted');
    },
  });

  it('a LoopStep that overruns withTimeout fails with TIMEOUT (retryable); it does not end the run cancelled', async () => {
    const loop = new LoopStep('loop', new ToolStep('body', polite), () => true, 3).withTimeout(0.1);
    const result = await newEngine().executeWorkflow(new WorkflowBuilder('wf-loop-timeout').addStep(loop).build(), ctx());
    expect(result.steps[0]!.status).toBe('failed');
    expect(result.steps[0]!.error?.code).toBe('TIMEOUT');
    expect(result.status).toBe('failed');
  });

  it('a ConditionalStep that overruns withTimeout fails with TIMEOUT and is retried by its retry policy', async () => {
    let calls = 0;
    const onceSlow = new Tool({
      name: 'once_slow',
      execute: async (_args, toolCtx) => {
        calls += 1;
        if (calls === 1) {
          await aborted(toolCtx.signal);
          throw new Error('aborted');
        }
        return { fine: true };
      },
    });
    const cond = new ConditionalStep('cond').condition(() => true).ifTrue(new ToolStep('inner', onceSlow)).withTimeout(0.1).withRetry(1);
    const result = await newEngine().executeWorkflow(new WorkflowBuilder('wf-cond-timeout').addStep(cond).build(), ctx());
    expect(result.status).toBe('completed');
    expect(calls).toBe(2);
  });
});
