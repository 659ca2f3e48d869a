/**
 * Malformed declarative documents: each gives a WorkflowDefinitionError whose first issue names the
 * problem by its JSON Pointer and code; nothing crashes, hangs or pollutes prototypes. The published
 * schema file is the schema constant.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Limits, WorkflowContext, WorkflowDefinitionError, WorkflowEngine, Tool, compileWorkflowDocument, parseWorkflowDocument, workflowSchemaJson, type DefinitionIssue } from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';

const known = { tools: ['echo', 't'], agents: ['writer'] };

function issues(text: string, options: Parameters<typeof parseWorkflowDocument>[1] = known): readonly DefinitionIssue[] {
  try {
    parseWorkflowDocument(text, options);
  } catch (err) {
    expect(err).toBeInstanceOf(WorkflowDefinitionError);
    return (err as WorkflowDefinitionError).issues;
  }
  throw new Error('expected a WorkflowDefinitionError');
}

function first(text: string, options?: Parameters<typeof parseWorkflowDocument>[1]): DefinitionIssue {
  return issues(text, options)[0]!;
}

const one = (step: string) => `id: wf\nsteps:\n  - ${step}\n`;

describe('the JSON Pointer and code of the problem', () => {
  it('unknown tool and unknown agent, nested', () => {
    expect(first(one('{ id: a, tool: nope }'))).toMatchObject({ path: '/steps/0/tool', code: 'UNKNOWN_TOOL' });
    expect(first(one('{ id: a, if: "true", then: { id: b, parallel: [{ id: c, tool: echo }, { id: d, agent: ghost }] } }'))).toMatchObject({
      path: '/steps/0/then/parallel/1/agent',
      code: 'UNKNOWN_AGENT',
    });
  });

  it('without names given, unknown tools are left to the engine, which reports them before anything runs', async () => {
    const wf = parseWorkflowDocument(one('{ id: a, tool: nope }'), {});
    const engine = new WorkflowEngine({ logger: quietLogger(), tools: [new Tool({ name: 'echo', execute: () => ({}) })] });
    try {
      await expect(engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'x' }))).rejects.toMatchObject({ issues: [{ path: 'a', code: 'UNKNOWN_TOOL' }] });
    } finally {
      await engine.close();
    }
  });

  it('duplicate step ids, anywhere in the tree', () => {
    expect(first('id: wf\nsteps:\n  - { id: a, tool: echo }\n  - { id: b, loop: { id: a, tool: echo } }\n')).toMatchObject({
      path: '/steps/1/loop/id',
      code: 'DUPLICATE_STEP_ID',
      message: expect.stringContaining('/steps/0/id'),
    });
  });

  it('CEL that does not parse: the message gives the position; every bad expression is reported', () => {
    const all = issues('id: wf\nsteps:\n  - { id: a, tool: echo, when: "vars.x == " }\n  - { id: b, if: "vars.(y", then: { id: c, tool: echo } }\n');
    expect(all).toHaveLength(2);
    expect(all[0]).toMatchObject({ path: '/steps/0/when', code: 'CEL_SYNTAX_ERROR', message: expect.stringMatching(/line 1, column \d+/) });
    expect(all[1]).toMatchObject({ path: '/steps/1/if', code: 'CEL_SYNTAX_ERROR', message: expect.stringMatching(/line 1, column 5/) });
    expect(first(one('{ id: a, tool: echo, args: { "x/y": "1 +" } }'))).toMatchObject({ path: '/steps/0/args/x~1y', code: 'CEL_SYNTAX_ERROR' });
  });

  it('CEL naming an unknown variable; iteration only in loop conditions', () => {
    expect(first(one('{ id: a, tool: echo, when: "vars.ok && secret" }'))).toMatchObject({
      path: '/steps/0/when',
      code: 'CEL_UNKNOWN_VARIABLE',
      message: expect.stringContaining('line 1, column 12'),
    });
    expect(first(one('{ id: a, tool: echo, when: "iteration < 2" }'))).toMatchObject({ code: 'CEL_UNKNOWN_VARIABLE' });
    expect(() => parseWorkflowDocument(one('{ id: a, while: "iteration < 2", loop: { id: b, tool: echo } }'), known)).not.toThrow();
  });

  it('wrong types', () => {
    expect(first(one('{ id: a, tool: 5 }'))).toMatchObject({ path: '/steps/0/tool', code: 'WRONG_TYPE' });
    expect(first(one('{ id: a, tool: echo, timeoutSeconds: "30" }'))).toMatchObject({ path: '/steps/0/timeoutSeconds', code: 'WRONG_TYPE' });
    expect(first(one('{ id: a, parallel: { id: b, tool: echo } }'))).toMatchObject({ path: '/steps/0/parallel', code: 'WRONG_TYPE' });
    expect(first('id: wf\nsteps: nope\n')).toMatchObject({ path: '/steps', code: 'WRONG_TYPE' });
    expect(first('- a list\n')).toMatchObject({ path: '', code: 'WRONG_TYPE' });
  });

  it('missing fields, a step without a kind, unknown fields', () => {
    expect(first('steps: [{ id: a, tool: echo }]\n')).toMatchObject({ path: '/id', code: 'MISSING_FIELD' });
    expect(first('id: wf\n')).toMatchObject({ path: '/steps', code: 'MISSING_FIELD' });
    expect(first(one('{ tool: echo }'))).toMatchObject({ path: '/steps/0/id', code: 'MISSING_FIELD' });
    expect(first(one('{ id: a }'))).toMatchObject({ path: '/steps/0', code: 'INVALID_STEP_KIND' });
    expect(first(one('{ id: a, tool: echo, agent: writer }'))).toMatchObject({ path: '/steps/0', code: 'INVALID_STEP_KIND' });
    expect(first(one('{ id: a, tool: echo, retries: 3 }'))).toMatchObject({ path: '/steps/0/retries', code: 'UNKNOWN_FIELD' });
  });

  it('values out of range and conflicting options', () => {
    expect(first(one('{ id: a, tool: echo, retry: { maxRetries: -1 } }'))).toMatchObject({ path: '/steps/0/retry/maxRetries', code: 'OUT_OF_RANGE' });
    expect(first(one('{ id: a, tool: echo, retry: { maxRetries: 1, maxAttempts: 2 } }'))).toMatchObject({ path: '/steps/0/retry', code: 'CONFLICTING_FIELDS' });
    expect(first(one(`{ id: a, tool: echo, timeoutSeconds: ${Limits.maxTimeoutSeconds + 1} }`))).toMatchObject({ path: '/steps/0/timeoutSeconds', code: 'OUT_OF_RANGE' });
    expect(first(one('{ id: a, parallel: [{ id: b, tool: echo }], failurePolicy: sometimes }'))).toMatchObject({ path: '/steps/0/failurePolicy', code: 'INVALID_VALUE' });
    expect(first(one('{ id: a, parallel: [{ id: b, tool: echo }], minimumSuccessCount: 2 }'))).toMatchObject({ path: '/steps/0/minimumSuccessCount', code: 'OUT_OF_RANGE' });
    expect(first(one('{ id: "a/b", tool: echo }'))).toMatchObject({ path: '/steps/0/id', code: 'INVALID_FORMAT' });
    expect(first(one('{ id: a, agent: writer, input: "vars.x", message: hi }'))).toMatchObject({ path: '/steps/0/message', code: 'CONFLICTING_FIELDS' });
    expect(first(one('{ id: a, if: "true", then: { id: b, tool: echo, fallback: { id: c, tool: echo } } }'))).toMatchObject({
      path: '/steps/0/then/fallback',
      code: 'FALLBACK_NOT_TOP_LEVEL',
    });
  });
});

describe('limits', () => {
  it('an expression over the length limit', () => {
    const long = `vars.x == "${'a'.repeat(Limits.maxExpressionLength)}"`;
    expect(first(one(`{ id: a, tool: echo, when: '${long}' }`))).toMatchObject({ path: '/steps/0/when', code: 'EXPRESSION_TOO_LONG' });
    expect(first(one(`{ id: a, if: '${long}' }`))).toMatchObject({ path: '/steps/0/if', code: 'EXPRESSION_TOO_LONG' });
  });

  it('CEL that is too complex: nested comprehensions, too many nodes, deep parentheses', () => {
    expect(first(one('{ id: a, tool: echo, when: "vars.l.all(x, vars.l.exists(y, x == y))" }'))).toMatchObject({ path: '/steps/0/when', code: 'CEL_TOO_COMPLEX' });
    const many = Array.from({ length: Limits.maxExpressionNodes }, (_, i) => `${i}`).join('+');
    expect(first(one(`{ id: a, tool: echo, args: { x: "${many}" } }`))).toMatchObject({ path: '/steps/0/args/x', code: expect.stringMatching(/CEL_TOO_COMPLEX|EXPRESSION_TOO_LONG/) });
    const deep = `${'('.repeat(1000)}1${')'.repeat(1000)}`;
    expect(first(one(`{ id: a, tool: echo, args: { x: "${deep}" } }`))).toMatchObject({ path: '/steps/0/args/x', code: expect.stringMatching(/^CEL_/) });
  });

  it('string building inside an expression is capped while it runs', async () => {
    const wf = parseWorkflowDocument(
      one(`{ id: a, tool: echo, args: { x: '${Array.from({ length: 40 }, () => 'vars.s').join(' + ')}' } }`),
      known,
    );
    const engine = new WorkflowEngine({ logger: quietLogger(), tools: [new Tool({ name: 'echo', execute: (a: unknown) => a })] });
    try {
      const result = await engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'x', variables: { s: 'y'.repeat(100_000) } }));
      expect(result.status).toBe('failed');
      expect(result.steps[0]!.error!.message).toContain('concatenation');
    } finally {
      await engine.close();
    }
  });

  it('a document over the size limit is refused before it is parsed', () => {
    const big = `id: wf\ndescription: "${'x'.repeat(Limits.maxDefinitionBytes)}"\nsteps: [{ id: a, tool: echo }]\n`;
    expect(first(big)).toMatchObject({ path: '', code: 'DOCUMENT_TOO_LARGE' });
  });

  it('deep nesting is refused without overflowing the stack', () => {
    expect(first(`${'['.repeat(50_000)}${']'.repeat(50_000)}`)).toMatchObject({ code: expect.stringMatching(/INVALID_YAML|TOO_DEEP/) });
    expect(first(`${'['.repeat(50_000)}${']'.repeat(50_000)}`, 'json')).toMatchObject({ code: expect.stringMatching(/INVALID_JSON|TOO_DEEP/) });
    let step = '{ id: s0, tool: echo }';
    for (let i = 1; i < 80; i++) step = `{ id: s${i}, loop: ${step} }`;
    expect(first(one(step))).toMatchObject({ code: 'TOO_DEEP' });
  });

  it('YAML aliases cannot expand without bound', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    expect(first(`${lines.join('\n')}\nid: wf\nsteps: [{ id: a, tool: echo }]\n`)).toMatchObject({ path: '', code: 'INVALID_YAML' });
  });
});

describe('text that is not a document', () => {
  it('invalid YAML gives its position', () => {
    expect(first('id: wf\nsteps: [\n  { id: a, tool: echo\n')).toMatchObject({ path: '', code: 'INVALID_YAML', message: expect.stringMatching(/line \d+, column \d+/) });
    expect(first('id: wf\nid: again\nsteps: [{ id: a, tool: echo }]\n')).toMatchObject({ code: 'INVALID_YAML' });
  });

  it('invalid JSON', () => {
    expect(first('{"id": "wf",', 'json')).toMatchObject({ path: '', code: 'INVALID_JSON' });
  });

  it('empty text and non-text', () => {
    expect(first('')).toMatchObject({ path: '', code: 'WRONG_TYPE' });
    expect(() => parseWorkflowDocument(42 as unknown as string)).toThrow(WorkflowDefinitionError);
    expect(() => compileWorkflowDocument(null)).toThrow(WorkflowDefinitionError);
  });
});

describe('prototype pollution', () => {
  it('__proto__ keys are fields like any other: refused where unknown, plain keys where data', async () => {
    for (const text of [
      'id: wf\n__proto__: { polluted: 1 }\nsteps: [{ id: a, tool: echo }]\n',
      '{"id": "wf", "__proto__": {"polluted": 1}, "steps": [{"id": "a", "tool": "echo"}]}',
    ]) {
      expect(first(text)).toMatchObject({ path: '/__proto__', code: 'UNKNOWN_FIELD' });
    }
    expect(first(one('{ id: a, tool: echo, __proto__: { tool: 5 } }'))).toMatchObject({ path: '/steps/0/__proto__', code: 'UNKNOWN_FIELD' });

    const wf = parseWorkflowDocument(
      one(`{ id: a, tool: echo, staticArgs: { __proto__: { polluted: 1 } }, args: { constructor: '{"__proto__": {"polluted": 2}}' } }`),
      known,
    );
    const seen: unknown[] = [];
    const engine = new WorkflowEngine({ logger: quietLogger(), tools: [new Tool({ name: 'echo', execute: (a: unknown) => (seen.push(a), { ok: true }) })] });
    try {
      const result = await engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'x' }));
      expect(result.status).toBe('completed');
    } finally {
      await engine.close();
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    const args = seen[0] as Record<string, unknown>;
    expect(Object.getPrototypeOf(args)).toBe(Object.prototype);
    expect(Object.keys(args).sort()).toEqual(['__proto__', 'constructor']);
  });
});

describe('the published schema', () => {
  it('schema/workflow.schema.json is the schema constant (regenerate with workflowSchemaJson())', () => {
    expect(readFileSync(new URL('../../schema/workflow.schema.json', import.meta.url), 'utf8')).toBe(workflowSchemaJson());
  });

  it('the e-commerce example declares it', () => {
    expect(readFileSync(new URL('../../examples/order-processing.yaml', import.meta.url), 'utf8')).toContain('$schema: ../schema/workflow.schema.json');
  });
});
