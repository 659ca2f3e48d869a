/**
 * Seed, "Core Components": Workflow Definition (Workflow + addStep; WorkflowBuilder addAgentStep /
 * addToolStep) and Workflow Execution (a context with userContext, variables and metadata; execute;
 * status, totalExecutionTimeMs, steps, successRate).
 */
import { describe, expect, it } from 'vitest';
import {
  Agent,
  AgentStep,
  ScriptedModelProvider,
  Tool,
  Workflow,
  WorkflowBuilder,
  WorkflowContext,
  textReply,
  type ToolContext,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';
import { ids, withEngine } from './support.ts';

const welcomeAgent = new Agent({ name: 'welcome_agent', instructions: 'You welcome new customers to the service.' });

/** The seed's `account_tool`: creates an account of the requested type for the run's customer. */
function makeAccountTool() {
  const calls: { args: unknown; userContext: unknown; stepPath: string }[] = [];
  const tool = new Tool({
    name: 'create_account',
    description: 'Create a customer account',
    parameters: { type: 'object', properties: { type: { enum: ['standard', 'business'] } }, required: ['type'], additionalProperties: false },
    execute: (args: { type: string }, ctx: ToolContext) => {
      calls.push({ args, userContext: ctx.userContext, stepPath: ctx.stepPath });
      const customerId = (ctx.userContext as { customer_id?: string } | undefined)?.customer_id ?? 'anonymous';
      return { account_id: `acct-${customerId}`, account_type: args.type };
    },
  });
  return { tool, calls };
}

describe('seed: Workflow Definition', () => {
  it('Workflow(id, name, description) with addStep(AgentStep) runs the agent through the model provider', async () => {
    // Create a simple workflow
    const workflow = new Workflow('customer_onboarding', 'Customer Onboarding Process', 'Complete customer onboarding workflow');
    // Add steps to workflow
    const agentStep = new AgentStep('welcome_step', welcomeAgent, 'Welcome new customer');
    workflow.addStep(agentStep);

    expect(workflow.id).toBe('customer_onboarding');
    expect(workflow.name).toBe('Customer Onboarding Process');
    expect(workflow.description).toBe('Complete customer onboarding workflow');
    expect(ids(workflow.steps)).toEqual(['welcome_step']);

    const provider = new ScriptedModelProvider([textReply('Scripted reply: welcome aboard!')]);
    // The seed's `await workflow.execute(context)`: without an engine, a short-lived one is made and closed.
    const result = await workflow.execute(new WorkflowContext({ workflowId: 'onboarding_001' }), { modelProvider: provider, logger: quietLogger() });

    expect(result.status).toBe('completed');
    expect(result.workflowId).toBe('customer_onboarding');
    expect(result.steps).toHaveLength(1);
    expect(result.steps[0]).toMatchObject({ stepId: 'welcome_step', path: 'welcome_step', kind: 'agent', status: 'completed', attempts: 1 });
    expect(result.steps[0]!.output).toBe('Scripted reply: welcome aboard!');
    expect(provider.requests).toHaveLength(1);
    expect(provider.requests[0]!.agent.name).toBe('welcome_agent');
    expect(provider.requests[0]!.messages).toEqual([
      { role: 'system', content: 'You welcome new customers to the service.' },
      { role: 'user', content: 'Welcome new customer' },
    ]);
  });

  it('WorkflowBuilder(...).addAgentStep(...).addToolStep(...).build() runs both steps in order', async () => {
    const { tool: accountTool, calls } = makeAccountTool();
    // Or use the builder pattern
    const workflow = new WorkflowBuilder('customer_onboarding', 'Customer Onboarding')
      .addAgentStep('welcome', welcomeAgent, 'Welcome new customer')
      .addToolStep('create_account', accountTool, { type: 'standard' })
      .build();

    expect(workflow).toBeInstanceOf(Workflow);
    expect(workflow.name).toBe('Customer Onboarding');
    expect(ids(workflow.steps)).toEqual(['welcome', 'create_account']);

    const provider = new ScriptedModelProvider([textReply('Scripted reply: hello!')]);
    const result = await withEngine({ modelProvider: provider }, (engine) =>
      engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'onboarding_002', userContext: { customer_id: 'cust_1' } })),
    );

    expect(result.status).toBe('completed');
    expect(ids(result.steps)).toEqual(['welcome', 'create_account']);
    expect(result.steps.map((s) => s.kind)).toEqual(['agent', 'tool']);
    expect(calls).toEqual([{ args: { type: 'standard' }, userContext: { customer_id: 'cust_1' }, stepPath: 'create_account' }]);
    expect(result.steps[1]!.output).toEqual({ account_id: 'acct-cust_1', account_type: 'standard' });
    // A plain-object tool output merges into the variables.
    expect(result.context.variables).toMatchObject({ account_id: 'acct-cust_1', account_type: 'standard' });
    // The agent's text answer is recorded as its output and not merged.
    expect(result.steps[0]!.output).toBe('Scripted reply: hello!');
  });
});

describe('seed: Workflow Execution', () => {
  it('executes with a context of userContext, variables and metadata and reports status, time, steps and success rate', async () => {
    const { tool: accountTool, calls } = makeAccountTool();
    const workflow = new WorkflowBuilder('customer_onboarding', 'Customer Onboarding')
      .addAgentStep('welcome', welcomeAgent, 'Welcome new customer')
      .addToolStep('create_account', accountTool, { type: 'standard' })
      .build();

    // Create execution context
    const context = new WorkflowContext({
      workflowId: 'onboarding_001',
      userContext: { customer_id: 'cust_12345' },
      variables: {
        customer_email: 'john@example.com',
        verification_status: 'pending',
      },
      metadata: {
        started_by: 'system',
        priority: 'high',
      },
    });

    // Execute workflow
    const provider = new ScriptedModelProvider([textReply('Scripted reply: welcome, John.')]);
    const result = await workflow.execute(context, { modelProvider: provider, logger: quietLogger() });

    const printed = [
      `Workflow Status: ${result.status}`,
      `Execution Time: ${result.totalExecutionTimeMs}ms`,
      `Steps Completed: ${result.steps.length}`,
      `Success Rate: ${result.successRate}%`,
    ];
    expect(printed[0]).toBe('Workflow Status: completed');
    expect(printed[2]).toBe('Steps Completed: 2');
    expect(printed[3]).toBe('Success Rate: 100%');
    expect(result.totalExecutionTimeMs).toBeGreaterThan(0);
    expect(result.totalExecutionTimeMs).toBeGreaterThanOrEqual(result.steps.reduce((sum, s) => sum + s.executionTimeMs, 0));
    expect(result.stepsCompleted).toBe(2);
    expect(result.totalSteps).toBe(2);

    // userContext reaches tools untouched; variables and metadata carry through to the final context.
    expect(calls[0]!.userContext).toEqual({ customer_id: 'cust_12345' });
    expect(result.context.workflowId).toBe('onboarding_001');
    expect(result.context.userContext).toEqual({ customer_id: 'cust_12345' });
    expect(result.context.metadata).toEqual({ started_by: 'system', priority: 'high' });
    expect(result.context.variables).toEqual({
      customer_email: 'john@example.com',
      verification_status: 'pending',
      account_id: 'acct-cust_12345',
      account_type: 'standard',
    });
  });

  it('successRate counts successful executed steps over executed steps, skipped ones excluded', async () => {
    const failing = new Tool({
      name: 'verify_identity',
      execute: () => {
        throw Object.assign(new Error('identity provider rejected the document'), { retryable: false });
      },
    });
    const ok = new Tool({ name: 'noop', execute: () => ({ done: true }) });
    const workflow = new WorkflowBuilder('rates')
      .addToolStep('first', ok)
      .addStep(new AgentStep('skipped_agent', welcomeAgent, 'never').addCondition(() => false))
      .addToolStep('verify', failing)
      .addToolStep('never_reached', ok)
      .build();
    const provider = new ScriptedModelProvider([]);
    const result = await withEngine({ modelProvider: provider }, (engine) => engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'rates_1' })));

    expect(result.status).toBe('failed');
    expect(result.steps.map((s) => [s.stepId, s.status])).toEqual([
      ['first', 'completed'],
      ['skipped_agent', 'skipped'],
      ['verify', 'failed'],
    ]);
    expect(result.successRate).toBe(50);
    expect(result.stepsCompleted).toBe(1);
    expect(result.totalSteps).toBe(4);
    expect(result.error).toMatchObject({ code: 'TOOL_ERROR', message: 'identity provider rejected the document', stepPath: 'verify' });
    expect(provider.requests).toHaveLength(0);
  });
});
