/**
 * examples/order-processing.yaml runs through a real engine (the example's pool tools on a two-thread
 * Piscina pool, its agents on the offline scripted provider) and gives what the TypeScript workflow
 * (createOrderProcessingWorkflow) gives on the same context: step statuses, outputs and variables.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordingClock, parseWorkflowDocument, type StepDefinition, type StepResult, type Workflow, type WorkflowEngine, type WorkflowResult } from 'jaf-workflows';
import {
  createOfflineModelProvider,
  createOrderContext,
  createOrderEngine,
  createOrderProcessingWorkflow,
  orderAgents,
  orderTools,
  type OrderData,
} from '../../examples/order-processing.ts';
import { quietLogger } from '../helpers/logging.ts';

const yamlText = readFileSync(new URL('../../examples/order-processing.yaml', import.meta.url), 'utf8');

function yamlWorkflow(): Workflow {
  return parseWorkflowDocument(yamlText, { tools: orderTools, agents: orderAgents });
}

/** What a step did, without timings and random ids. */
function summary(step: StepResult): unknown {
  return {
    path: step.path,
    kind: step.kind,
    status: step.status,
    attempts: step.attempts,
    output: scrub(step.output),
    error: step.error?.code,
    children: step.children.map(summary),
  };
}

function scrub(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrub);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === 'transaction_id' ? typeof v : scrub(v)]));
}

/** A definition tree without functions (which differ by construction, not by meaning). */
function shape(def: StepDefinition | undefined): unknown {
  if (def === undefined) return undefined;
  const base = { id: def.id, kind: def.kind, conditions: def.conditions.length, retry: def.retry, timeoutMs: def.timeoutMs, outputKey: def.outputKey };
  switch (def.kind) {
    case 'tool':
      return { ...base, tool: typeof def.tool === 'string' ? def.tool : def.tool.name, args: def.args.kind === 'none' ? 'none' : 'given' };
    case 'agent':
      return { ...base, agent: typeof def.agent === 'string' ? def.agent : def.agent.name, input: def.input.kind === 'static' ? def.input.value : def.input.kind, context: def.context.kind };
    case 'conditional':
      return { ...base, ifTrue: shape(def.ifTrue), ifFalse: shape(def.ifFalse) };
    case 'parallel':
      return { ...base, waitForAll: def.waitForAll, failurePolicy: def.failurePolicy, minimumSuccessCount: def.minimumSuccessCount, branches: def.branches.map(shape) };
    case 'loop':
      return { ...base, maxIterations: def.maxIterations, body: shape(def.body) };
  }
}

describe('examples/order-processing.yaml', () => {
  let engine: WorkflowEngine;

  beforeAll(() => {
    engine = createOrderEngine({ logger: quietLogger(), clock: new RecordingClock(), pool: { maxThreads: 2 } });
  });

  afterAll(async () => {
    await engine.close();
  });

  async function run(workflow: Workflow, overrides: Partial<OrderData>): Promise<{ result: WorkflowResult; agents: string[]; prompts: unknown[] }> {
    const provider = createOfflineModelProvider();
    const result = await engine.executeWorkflow(workflow, createOrderContext(overrides), { modelProvider: provider });
    return { result, agents: provider.requests.map((r) => r.agent.name), prompts: provider.requests.map((r) => r.messages) };
  }

  it('compiles to the same definition tree as the TypeScript workflow', () => {
    const fromYaml = yamlWorkflow();
    const fromTs = createOrderProcessingWorkflow();
    expect(fromYaml.id).toBe(fromTs.id);
    expect(fromYaml.description).toBe(fromTs.description);
    expect(fromYaml.steps.map((s) => shape(s.toDefinition()))).toEqual(fromTs.steps.map((s) => shape(s.toDefinition())));
    expect(fromYaml.globalErrorHandler).toBeTypeOf('function');
  });

  const cases: [string, Partial<OrderData>, string][] = [
    ['the seed order (happy path)', {}, 'fulfillment_agent'],
    ['an invalid order', { customer_email: 'customer-at-example.com', order_total: 99.99 }, 'order_validation_agent'],
    ['an out-of-stock order', { order_items: [{ sku: 'ITEM-001', quantity: 500, price: 29.99 }], order_total: 14995 }, 'inventory_agent'],
  ];

  it.each(cases)('%s: same statuses, outputs, variables and agent prompts as the TypeScript workflow', async (_name, overrides, agent) => {
    const ts = await run(createOrderProcessingWorkflow(), overrides);
    const yaml = await run(yamlWorkflow(), overrides);
    expect(yaml.result.status).toBe(ts.result.status);
    expect(yaml.result.stepsCompleted).toBe(ts.result.stepsCompleted);
    expect(yaml.result.totalSteps).toBe(ts.result.totalSteps);
    expect(yaml.result.steps.map(summary)).toEqual(ts.result.steps.map(summary));
    expect(scrub(yaml.result.context.variables)).toEqual(scrub(ts.result.context.variables));
    expect(yaml.agents).toEqual(ts.agents);
    expect(yaml.agents).toContain(agent);
    expect(yaml.prompts).toEqual(ts.prompts);
  });

  it('the happy path completes 5/5 with the fulfillment branches on the pool', async () => {
    const { result } = await run(yamlWorkflow(), {});
    expect(result.status).toBe('completed');
    expect(result.stepsCompleted).toBe(5);
    expect(result.context.variables).toMatchObject({ order_valid: true, payment_successful: true, fulfillment_status: 'ready_to_ship', crm_updated: true });
    expect(engine.poolStats()!.threads).toBeLessThanOrEqual(2);
  });
});
