/**
 * Every step kind and option of a declarative document compiles to the definition model and runs:
 * CEL conditions skip or run steps, CEL arguments and agent inputs are computed from the variables,
 * parallel failure policies, loops reading `iteration`, retry and timeout values, fallbacks, onError.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  Agent,
  RecordingClock,
  ScriptedModelProvider,
  Tool,
  WorkflowContext,
  WorkflowEngine,
  parseWorkflowDocument,
  textReply,
  type StepResult,
  type WorkflowResult,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';

const calls: Record<string, unknown[]> = {};
function record(name: string, args: unknown): void {
  (calls[name] ??= []).push(args);
}

const tools = [
  new Tool({ name: 'echo', execute: (args: Record<string, unknown>) => (record('echo', args), { ...args }) }),
  new Tool({ name: 'inc', execute: (args: { n: number }) => ({ n: args.n + 1 }) }),
  new Tool({
    name: 'fail',
    execute: (args: { message?: string }) => {
      throw new Error(args.message ?? 'boom');
    },
  }),
  new Tool({
    name: 'flaky',
    execute: (args: { key: string }) => {
      record(args.key, 1);
      if (calls[args.key]!.length === 1) throw new Error('network glitch');
      return { recovered: true };
    },
  }),
];

const agents = [
  new Agent({ name: 'writer', instructions: ({ context }) => `Tier: ${(context as { tier?: string } | undefined)?.tier ?? 'none'}` }),
];

const engines: WorkflowEngine[] = [];
afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
});

function engine(provider = new ScriptedModelProvider([], { whenExhausted: () => textReply('done') })): WorkflowEngine {
  const e = new WorkflowEngine({ tools, agents, modelProvider: provider, logger: quietLogger(), clock: new RecordingClock() });
  engines.push(e);
  return e;
}

async function run(yaml: string, variables: Record<string, unknown> = {}, e = engine()): Promise<WorkflowResult> {
  const workflow = parseWorkflowDocument(yaml, { tools, agents });
  return e.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'declarative', variables, metadata: { source: 'test' } }));
}

function all(steps: readonly StepResult[]): StepResult[] {
  return steps.flatMap((s) => [s, ...all(s.children)]);
}

function at(result: WorkflowResult, path: string): StepResult {
  const found = all(result.steps).find((s) => s.path === path);
  if (found === undefined) throw new Error(`no step ${path}: ${all(result.steps).map((s) => s.path).join(', ')}`);
  return found;
}

describe('tool steps', () => {
  it('args are CEL over vars and metadata, merged over staticArgs; the output merges into the variables', async () => {
    const result = await run(
      `
id: tools
steps:
  - id: first
    tool: echo
    staticArgs: { fixed: [1, 2], label: static }
    args:
      label: '"order " + vars.order_id'
      total: 'vars.items.map(i, i.price * i.qty).exists(x, x > 10) ? 1 : 0'
      source: metadata.source
      big: 'vars.items.size() > 1'
`,
      { order_id: 'A-1', items: [{ price: 20, qty: 1 }, { price: 1.5, qty: 2 }] },
    );
    expect(result.status).toBe('completed');
    expect(at(result, 'first').output).toEqual({ fixed: [1, 2], label: 'order A-1', total: 1, source: 'test', big: true });
    expect(result.context.variables).toMatchObject({ label: 'order A-1', big: true });
  });

  it('outputKey keeps the whole output under one variable', async () => {
    const result = await run(`
id: output_key
steps:
  - { id: s, tool: echo, staticArgs: { a: 1 }, outputKey: echoed }
`);
    expect(result.context.variables).toMatchObject({ echoed: { a: 1 } });
    expect(result.context.variables).not.toHaveProperty('a');
  });

  it('when: a false CEL condition skips the step, a true one runs it; a list means all of them', async () => {
    const result = await run(
      `
id: conditions
steps:
  - { id: runs, tool: echo, args: { ran: 'true' }, when: vars.go }
  - { id: skipped, tool: echo, args: { also: 'true' }, when: '!vars.go' }
  - { id: both, tool: echo, args: { both: 'true' }, when: [vars.go, 'vars.level >= 2'] }
  - { id: not_both, tool: echo, args: { nope: 'true' }, when: [vars.go, 'vars.level > 2'] }
`,
      { go: true, level: 2 },
    );
    expect(result.steps.map((s) => [s.stepId, s.status])).toEqual([
      ['runs', 'completed'],
      ['skipped', 'skipped'],
      ['both', 'completed'],
      ['not_both', 'skipped'],
    ]);
    expect(result.context.variables).toMatchObject({ ran: true, both: true });
    expect(result.context.variables).not.toHaveProperty('nope');
  });

  it('a CEL expression that fails at run time (missing variable, non-boolean condition) fails the step, not the engine', async () => {
    const missing = await run(`
id: runtime_error
steps:
  - { id: s, tool: echo, args: { x: vars.nothing_here } }
`);
    expect(missing.status).toBe('failed');
    expect(at(missing, 's').error).toMatchObject({ code: 'USER_FUNCTION_ERROR' });
    expect(at(missing, 's').error!.message).toContain('nothing_here');
    const notBool = await run(`
id: not_bool
steps:
  - { id: s, tool: echo, when: '"yes"' }
`);
    expect(notBool.status).toBe('failed');
    expect(at(notBool, 's').error!.message).toContain('not a boolean');
  });
});

describe('conditional, parallel and loop steps', () => {
  const conditional = `
id: conditional
steps:
  - id: route
    if: vars.amount > 100
    then: { id: big, tool: echo, args: { route: '"big"' } }
    else: { id: small, tool: echo, args: { route: '"small"' } }
  - id: only_then
    if: vars.amount > 1000
    then: { id: huge, tool: echo, args: { huge: 'true' } }
`;

  it('if/then/else picks the branch by CEL; a missing branch skips', async () => {
    const big = await run(conditional, { amount: 150.5 });
    expect(big.context.variables).toMatchObject({ route: 'big' });
    expect(at(big, 'route').metadata).toMatchObject({ branch: 'true' });
    expect(at(big, 'only_then').status).toBe('skipped');
    const small = await run(conditional, { amount: 5 });
    expect(small.context.variables).toMatchObject({ route: 'small' });
  });

  it('parallel, fail_fast (default): one failed branch fails the step', async () => {
    const result = await run(`
id: fail_fast
steps:
  - id: fan
    parallel:
      - { id: a, tool: echo, args: { a: 'true' } }
      - { id: b, tool: fail }
`);
    expect(result.status).toBe('failed');
    expect(at(result, 'fan').error).toMatchObject({ code: 'PARALLEL_FAILED' });
  });

  it('parallel, continue_on_partial_failure with minimumSuccessCount', async () => {
    const doc = (min: number) => `
id: partial
steps:
  - id: fan
    failurePolicy: continue_on_partial_failure
    minimumSuccessCount: ${min}
    parallel:
      - { id: a, tool: echo, args: { a: 'true' } }
      - { id: b, tool: fail }
      - { id: c, tool: echo, args: { c: 'true' } }
`;
    const ok = await run(doc(2));
    expect(ok.status).toBe('completed');
    expect(ok.context.variables).toMatchObject({ a: true, c: true });
    const tooFew = await run(doc(3));
    expect(tooFew.status).toBe('failed');
  });

  it('parallel with waitForAll false: the first successful branch wins', async () => {
    const result = await run(`
id: race
steps:
  - id: fan
    waitForAll: false
    parallel:
      - { id: a, tool: fail }
      - { id: b, tool: echo, args: { winner: '"b"' } }
`);
    expect(result.status).toBe('completed');
    expect(result.context.variables).toMatchObject({ winner: 'b' });
  });

  it('loop: while sees iteration and vars; maxIterations caps it; outputs are kept as a list', async () => {
    const byIteration = await run(
      `
id: loop_iteration
steps:
  - id: count
    while: iteration < 3
    maxIterations: 10
    loop: { id: step, tool: inc, args: { n: vars.n } }
`,
      { n: 0 },
    );
    expect(byIteration.status).toBe('completed');
    expect(byIteration.context.variables).toMatchObject({ n: 3 });
    expect(at(byIteration, 'count').output).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);

    const byVars = await run(
      `
id: loop_vars
steps:
  - { id: count, while: vars.n < 100, maxIterations: 4, loop: { id: step, tool: inc, args: { n: vars.n } } }
`,
      { n: 0 },
    );
    expect(byVars.context.variables).toMatchObject({ n: 4 });
  });
});

describe('options in the definition', () => {
  it('retry and timeout values end up in the definition, as the TypeScript setters give them', () => {
    const wf = parseWorkflowDocument(`
id: options
steps:
  - { id: a, tool: echo, retry: 2, timeoutSeconds: 1.5 }
  - { id: b, tool: echo, retry: { maxAttempts: 4, initialDelaySeconds: 0.5, maxDelaySeconds: 2, backoffCoefficient: 3 } }
  - { id: c, tool: echo, retry: { maxRetries: 1 } }
  - { id: d, tool: echo }
  - id: e
    parallel: [{ id: e1, tool: echo }]
    timeoutSeconds: 120
    retry: 1
  - { id: f, loop: { id: f1, tool: echo } }
`);
    const defs = wf.steps.map((s) => s.toDefinition());
    expect(defs[0]).toMatchObject({ kind: 'tool', tool: 'echo', timeoutMs: 1500, retry: { maxAttempts: 3, initialDelayMs: 1000, backoffCoefficient: 2, maxDelayMs: 30_000 } });
    expect(defs[1]).toMatchObject({ retry: { maxAttempts: 4, initialDelayMs: 500, maxDelayMs: 2000, backoffCoefficient: 3 } });
    expect(defs[2]).toMatchObject({ retry: { maxAttempts: 2 } });
    expect(defs[3]).toMatchObject({ retry: { maxAttempts: 1 }, timeoutMs: undefined, args: { kind: 'none' } });
    expect(defs[4]).toMatchObject({ kind: 'parallel', timeoutMs: 120_000, retry: { maxAttempts: 2 }, waitForAll: true, failurePolicy: 'fail_fast' });
    expect(defs[5]).toMatchObject({ kind: 'loop', maxIterations: 10 });
  });

  it('retry re-runs a failing tool step', async () => {
    const result = await run(`
id: retrying
steps:
  - { id: s, tool: flaky, staticArgs: { key: retry_case }, retry: 1 }
`);
    expect(result.status).toBe('completed');
    expect(at(result, 's').attempts).toBe(2);
  });

  it('agent steps: input and context are CEL, message is fixed text', async () => {
    const provider = new ScriptedModelProvider([], { whenExhausted: () => textReply('done') });
    const result = await run(
      `
id: agents
steps:
  - id: w1
    agent: writer
    input: '"Write to " + vars.name'
    context: '{"tier": vars.tier}'
  - { id: w2, agent: writer, message: Hello there }
`,
      { name: 'Ada', tier: 'gold' },
      engine(provider),
    );
    expect(result.status).toBe('completed');
    expect(provider.requests.map((r) => r.messages.map((m) => m.content))).toEqual([
      ['Tier: gold', 'Write to Ada'],
      ['Tier: none', 'Hello there'],
    ]);
  });

  it('fallback: a failed top-level step is replaced and the run completes', async () => {
    const result = await run(`
id: fallback
steps:
  - id: risky
    tool: fail
    fallback: { id: safe, tool: echo, args: { fell_back: 'true' } }
  - { id: after, tool: echo, args: { after: vars.fell_back } }
`);
    expect(result.status).toBe('completed');
    expect(result.context.variables).toMatchObject({ fell_back: true, after: true });
  });

  it('onError: the first matching rule decides (retry on network errors with annotations), else fail', async () => {
    const doc = (key: string, tool: string) => `
id: on_error
steps:
  - { id: s, tool: ${tool}, staticArgs: { key: ${key} } }
onError:
  - when: error.message.matches("(?i)NETWORK") && step.id == "s"
    action: retry
    annotations: { escalate: true }
  - action: fail
    annotations: { notify_team: true }
`;
    const retried = await run(doc('handler_case', 'flaky'));
    expect(retried.status).toBe('completed');
    expect(calls.handler_case).toHaveLength(2);
    expect(at(retried, 's').metadata).toMatchObject({ errorHandling: { action: 'retry', escalate: true } });
    const failed = await run(doc('other', 'fail'));
    expect(failed.status).toBe('failed');
    expect(at(failed, 's').metadata).toMatchObject({ errorHandling: { action: 'fail', notify_team: true } });
  });

  it('JSON documents work too', async () => {
    const result = await run(JSON.stringify({ id: 'json', steps: [{ id: 's', tool: 'echo', args: { v: '1 + 2' } }] }));
    expect(result.context.variables).toMatchObject({ v: 3 });
    const wf = parseWorkflowDocument(JSON.stringify({ id: 'json', name: 'JSON', steps: [{ id: 's', tool: 'echo' }] }), 'json');
    expect(wf.name).toBe('JSON');
  });
});

describe('versions of declarative workflows', () => {
  it('are identified by their document: a changed expression is a new version', () => {
    const doc = (threshold: number) => `id: versioned\nsteps:\n  - id: a\n    if: vars.amount > ${threshold}\n    then: { id: b, tool: t }\n`;
    const tool = new Tool({ name: 't', execute: () => ({}) });
    const engine = new WorkflowEngine({ tools: [tool], logger: quietLogger() });
    const v1 = engine.register(parseWorkflowDocument(doc(10), 'yaml'));
    const v1again = engine.register(parseWorkflowDocument(doc(10), 'yaml'));
    const v2 = engine.register(parseWorkflowDocument(doc(20), 'yaml'));
    expect(v1.definitionHash).toBe(v1again.definitionHash);
    expect(v2.definitionHash).not.toBe(v1.definitionHash);
  });
});
