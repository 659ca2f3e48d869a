/**
 * The seed's "Example: Complete E-commerce Order Processing", in TypeScript.
 *
 *   npx tsx --conditions=jaf-source examples/order-processing.ts
 *   npx tsc -p tsconfig.build.json && node dist/examples/order-processing.js
 *
 * The seven tools are real pool tools (examples/tools/*.ts, run on Piscina worker threads): in-memory,
 * deterministic business logic whose plain-object outputs merge into the run's variables, setting the
 * flags the later conditions read (`order_valid`, `inventory_available`, `payment_successful`,
 * `fulfillment_status`).
 *
 * The three agents are real `Agent`s run through the engine's agent loop, but no model is called: they
 * answer from a ScriptedModelProvider whose replies are scripted and offline (every reply says so).
 * An OpenAI-compatible provider can replace it: `createOrderEngine({ modelProvider })`.
 */
import { pathToFileURL } from 'node:url';
import {
  Agent,
  AgentStep,
  ConditionalStep,
  ParallelStep,
  ScriptedModelProvider,
  Tool,
  ToolStep,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowEngine,
  WorkflowLogger,
  modelProviderFromEnv,
  siblingModule,
  textReply,
  toolCallReply,
  type AgentState,
  type ChosenProvider,
  type EngineOptions,
  type ModelRequest,
  type ModelResponse,
  type StepError,
  type StepLogInfo,
  type StepResult,
  type Workflow,
  type WorkflowResult,
} from 'jaf-workflows';

// ---------------------------------------------------------------------------------------------------
// Order data
// ---------------------------------------------------------------------------------------------------

export interface OrderItem {
  readonly sku: string;
  readonly quantity: number;
  readonly price: number;
}

export interface ShippingAddress {
  readonly street: string;
  readonly city: string;
  readonly state: string;
  readonly zip: string;
}

/** The order of the seed's `main()`. */
export const sampleOrder = {
  order_id: 'ORD-12345',
  customer_id: 'CUST-67890',
  customer_email: 'customer@example.com',
  order_items: [
    { sku: 'ITEM-001', quantity: 2, price: 29.99 },
    { sku: 'ITEM-002', quantity: 1, price: 49.99 },
  ] as OrderItem[],
  order_total: 109.97,
  payment_method: 'credit_card',
  shipping_address: { street: '123 Main St', city: 'Anytown', state: 'CA', zip: '12345' } as ShippingAddress,
  customer_tier: 'premium',
};

export type OrderData = typeof sampleOrder;

/** The seed's execution context, with parts of the order replaced by `overrides`. */
export function createOrderContext(overrides: Partial<OrderData> = {}, workflowId = 'order_12345'): WorkflowContext {
  return new WorkflowContext({
    workflowId,
    initialData: { ...sampleOrder, ...overrides },
    metadata: { started_by: 'order_service', priority: 'normal', source: 'web' },
  });
}

// ---------------------------------------------------------------------------------------------------
// Tools: pool tools, one module each under ./tools/
// ---------------------------------------------------------------------------------------------------

const itemsSchema = {
  type: 'array',
  items: {
    type: 'object',
    properties: { sku: { type: 'string' }, quantity: { type: 'number' }, price: { type: 'number' } },
    required: ['sku', 'quantity'],
  },
};

const addressSchema = {
  type: 'object',
  properties: { street: { type: 'string' }, city: { type: 'string' }, state: { type: 'string' }, zip: { type: 'string' } },
  required: ['street', 'city', 'state', 'zip'],
};

const checkInventoryTool = new Tool({
  name: 'check_inventory',
  description: "Compare an order's items with the warehouse stock",
  parameters: { type: 'object', properties: { items: itemsSchema }, required: ['items'] },
  module: siblingModule(import.meta.url, './tools/check-inventory'),
});

/** The example's tools, registered on the engine by name (the steps name them, as in the seed). */
export const orderTools: readonly Tool[] = [
  new Tool({
    name: 'validate_order',
    description: "Check an order's items, total, email, payment method and address",
    parameters: {
      type: 'object',
      properties: {
        order_id: { type: 'string' },
        order_items: itemsSchema,
        order_total: { type: 'number' },
        customer_email: { type: 'string' },
        payment_method: { type: 'string' },
        shipping_address: { type: 'object' },
      },
      required: ['order_id', 'order_items', 'order_total', 'customer_email', 'payment_method', 'shipping_address'],
    },
    module: siblingModule(import.meta.url, './tools/validate-order'),
  }),
  checkInventoryTool,
  new Tool({
    name: 'process_payment',
    description: 'Authorise and capture a payment',
    parameters: {
      type: 'object',
      properties: { amount: { type: 'number', exclusiveMinimum: 0 }, payment_method: { type: 'string' } },
      required: ['amount', 'payment_method'],
    },
    module: siblingModule(import.meta.url, './tools/process-payment'),
  }),
  new Tool({
    name: 'update_inventory',
    description: "Reserve an order's items in the warehouse",
    parameters: { type: 'object', properties: { items: itemsSchema }, required: ['items'] },
    module: siblingModule(import.meta.url, './tools/update-inventory'),
  }),
  new Tool({
    name: 'create_shipping_label',
    description: 'Choose a carrier and issue a shipping label',
    parameters: { type: 'object', properties: { address: addressSchema, items: itemsSchema }, required: ['address', 'items'] },
    module: siblingModule(import.meta.url, './tools/create-shipping-label'),
  }),
  new Tool({
    name: 'send_confirmation_email',
    description: 'Queue the order confirmation email',
    parameters: {
      type: 'object',
      properties: { customer_email: { type: 'string' }, order_id: { type: 'string' } },
      required: ['customer_email', 'order_id'],
    },
    module: siblingModule(import.meta.url, './tools/send-confirmation-email'),
  }),
  new Tool({
    name: 'update_crm',
    description: "Record the order in the customer's CRM profile",
    parameters: {
      type: 'object',
      properties: { customer_id: { type: 'string' }, order_value: { type: 'number' } },
      required: ['customer_id', 'order_value'],
    },
    module: siblingModule(import.meta.url, './tools/update-crm'),
  }),
];

// ---------------------------------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------------------------------

/** Marks every reply of the offline provider, so nobody mistakes it for a model's answer. */
export const SCRIPTED_LABEL = '[scripted offline reply]';

function promptLines(lines: readonly string[]): string {
  return lines.join('\n');
}

export const orderAgents: readonly Agent[] = [
  new Agent({
    name: 'order_validation_agent',
    instructions: ({ workflow }: AgentState) =>
      promptLines([
        'You are the order validation agent. An order failed validation: decide whether to reject it or to ask the customer',
        'to correct it, and write one short message to the customer.',
        `Order id: ${workflow.get<string>('order_id')}`,
        `Validation problems: ${JSON.stringify(workflow.get('validation_errors', []))}`,
        'Answer with JSON: {"validation_resolution": "rejected" | "awaiting_customer", "validation_message": string}.',
      ]),
    outputSchema: {
      type: 'object',
      properties: { validation_resolution: { enum: ['rejected', 'awaiting_customer'] }, validation_message: { type: 'string' } },
      required: ['validation_resolution', 'validation_message'],
    },
    maxTurns: 3,
  }),
  new Agent({
    name: 'inventory_agent',
    instructions: ({ workflow }: AgentState) =>
      promptLines([
        'You are the inventory agent. Some items of an order may not ship from stock. Check the current stock with the',
        'check_inventory tool, then say which SKUs go on backorder and write one short message to the customer.',
        `Order id: ${workflow.get<string>('order_id')}`,
        `Order items: ${JSON.stringify(workflow.get('order_items', []))}`,
        'Answer with JSON: {"backordered_skus": string[], "inventory_message": string}.',
      ]),
    tools: [checkInventoryTool],
    outputSchema: {
      type: 'object',
      properties: { backordered_skus: { type: 'array', items: { type: 'string' } }, inventory_message: { type: 'string' } },
      required: ['backordered_skus', 'inventory_message'],
    },
    maxTurns: 4,
  }),
  new Agent({
    name: 'fulfillment_agent',
    instructions: ({ context }: AgentState) => {
      const { order_status, customer_tier } = context as { order_status: string; customer_tier: string };
      return promptLines([
        'You are the fulfillment agent. Write the final notification to the customer about their order.',
        `Order status: ${order_status}`,
        `Customer tier: ${customer_tier}`,
        'Answer with JSON: {"final_notification": string}.',
      ]);
    },
    outputSchema: { type: 'object', properties: { final_notification: { type: 'string' } }, required: ['final_notification'] },
    maxTurns: 3,
  }),
];

// ---------------------------------------------------------------------------------------------------
// The offline model: scripted replies, one script per agent
// ---------------------------------------------------------------------------------------------------

/** The value of a `Key: value` line of the system prompt. */
function promptFact(request: ModelRequest, key: string): string {
  const system = request.messages.find((m) => m.role === 'system')?.content ?? '';
  const line = system.split('\n').find((l) => l.startsWith(`${key}: `));
  return line === undefined ? '' : line.slice(key.length + 2);
}

function json(value: unknown): ModelResponse {
  return textReply(JSON.stringify(value));
}

/** What the offline provider answers, per agent. Deterministic: it reads only the request. */
export function scriptedOrderReply(request: ModelRequest): ModelResponse {
  const orderId = promptFact(request, 'Order id') || /\border (\S+)\s*$/.exec(request.messages.find((m) => m.role === 'user')?.content ?? '')?.[1] || 'unknown';
  switch (request.agent.name) {
    case 'order_validation_agent': {
      const problems = JSON.parse(promptFact(request, 'Validation problems') || '[]') as string[];
      return json({
        validation_resolution: 'awaiting_customer',
        validation_message: `${SCRIPTED_LABEL} Order ${orderId} is on hold until you correct: ${problems.join('; ') || 'the order details'}.`,
      });
    }
    case 'inventory_agent': {
      const toolMessage = request.messages.findLast((m) => m.role === 'tool');
      if (toolMessage === undefined) {
        // First turn: ask for the current stock of the order's items (runs check_inventory on the pool).
        return toolCallReply([{ name: 'check_inventory', arguments: { items: JSON.parse(promptFact(request, 'Order items') || '[]') } }]);
      }
      const answer = JSON.parse(toolMessage.content) as { status: string; result?: { unavailable_items: string[] }; message?: string };
      if (answer.status !== 'executed' || answer.result === undefined) {
        return json({ backordered_skus: [], inventory_message: `${SCRIPTED_LABEL} Stock for order ${orderId} could not be checked: ${answer.message ?? 'unknown error'}.` });
      }
      const skus = answer.result.unavailable_items;
      return json({
        backordered_skus: skus,
        inventory_message:
          skus.length === 0
            ? `${SCRIPTED_LABEL} Every item of order ${orderId} is in stock; nothing goes on backorder.`
            : `${SCRIPTED_LABEL} ${skus.join(', ')} of order ${orderId} go on backorder; we will ship when restocked.`,
      });
    }
    case 'fulfillment_agent': {
      const status = promptFact(request, 'Order status');
      const tier = promptFact(request, 'Customer tier');
      const progress =
        status === 'ready_to_ship' ? `Order ${orderId} is packed and ready to ship.` : `Order ${orderId} is not fulfilled yet (status: ${status}); our team will follow up.`;
      const perk = tier === 'premium' ? ' As a premium customer you have priority support.' : '';
      return json({ final_notification: `${SCRIPTED_LABEL} ${progress}${perk}` });
    }
    default:
      throw new Error(`scripted provider: no script for agent ${request.agent.name}`);
  }
}

/** A ScriptedModelProvider that answers every agent of this example offline (see `scriptedOrderReply`). */
export function createOfflineModelProvider(): ScriptedModelProvider {
  return new ScriptedModelProvider([], { whenExhausted: scriptedOrderReply });
}

// ---------------------------------------------------------------------------------------------------
// The workflow (the seed's create_order_processing_workflow)
// ---------------------------------------------------------------------------------------------------

export function createOrderProcessingWorkflow(): Workflow {
  return (
    new WorkflowBuilder('ecommerce_order_processing')
      .description('Complete e-commerce order processing pipeline')
      .addStep(
        // Step 1: Validate order. (The seed passes only the order id, implying an order service to look
        // the order up in; this example has none, so the tool gets the order's data.)
        new ToolStep('validate_order')
          .withParamsFunction((ctx) => ({
            order_id: ctx.get('order_id'),
            order_items: ctx.get('order_items'),
            order_total: ctx.get('order_total'),
            customer_email: ctx.get('customer_email'),
            payment_method: ctx.get('payment_method'),
            shipping_address: ctx.get('shipping_address'),
          }))
          .withTimeout(30)
          .withRetry({ maxAttempts: 3 }),
      )
      .addStep(
        // Step 2: Check inventory
        new ConditionalStep('inventory_check')
          .condition((ctx) => ctx.get('order_valid', false))
          .ifTrue(new ToolStep('check_inventory').withParamsFunction((ctx) => ({ items: ctx.get('order_items') })))
          .ifFalse(new AgentStep('order_validation_agent').withInput('Handle invalid order')),
      )
      .addStep(
        // Step 3: Process payment
        new ConditionalStep('payment_processing')
          .condition((ctx) => ctx.get('inventory_available', false))
          .ifTrue(
            new ToolStep('process_payment')
              .withParamsFunction((ctx) => ({
                amount: ctx.get('order_total'),
                payment_method: ctx.get('payment_method'),
              }))
              .withTimeout(60)
              .withRetry({ maxAttempts: 2 }),
          )
          .ifFalse(new AgentStep('inventory_agent').withInput('Handle out of stock items')),
      )
      .addStep(
        // Step 4: Parallel fulfillment
        new ConditionalStep('fulfillment_check')
          .condition((ctx) => ctx.get('payment_successful', false))
          .ifTrue(
            new ParallelStep('order_fulfillment')
              // Update inventory
              .addBranch(new ToolStep('update_inventory').withParamsFunction((ctx) => ({ items: ctx.get('order_items') })))
              // Generate shipping label
              .addBranch(
                new ToolStep('create_shipping_label').withParamsFunction((ctx) => ({
                  address: ctx.get('shipping_address'),
                  items: ctx.get('order_items'),
                })),
              )
              // Send confirmation email
              .addBranch(
                new ToolStep('send_confirmation_email').withParamsFunction((ctx) => ({
                  customer_email: ctx.get('customer_email'),
                  order_id: ctx.get('order_id'),
                })),
              )
              // Update CRM
              .addBranch(
                new ToolStep('update_crm').withParamsFunction((ctx) => ({
                  customer_id: ctx.get('customer_id'),
                  order_value: ctx.get('order_total'),
                })),
              )
              .withTimeout(120)
              .withFailurePolicy('continue_on_partial_failure')
              .withMinimumSuccessCount(3),
          ),
      )
      .addStep(
        // Step 5: Final notification
        new AgentStep('fulfillment_agent')
          .withInputFunction((ctx) => `Complete order fulfillment for order ${ctx.get<string>('order_id')}`)
          .withContextFunction((ctx) => ({
            order_status: ctx.get('fulfillment_status', 'unknown'),
            customer_tier: ctx.get('customer_tier', 'standard'),
          })),
      )
      // Any failed step: retry the step if the error mentions the network, else fail the run.
      .withErrorHandler((error: StepError) => ({
        action: error.message.toLowerCase().includes('network') ? 'retry' : 'fail',
        escalate: true,
        notify_team: true,
      }))
      .build()
  );
}

// ---------------------------------------------------------------------------------------------------
// The engine (the seed's WorkflowEngine())
// ---------------------------------------------------------------------------------------------------

/**
 * Console logging for the demo: retries, error-handler decisions and engine errors, one readable line
 * each, whatever LOG_LEVEL says. (Every method is overridden, so nothing goes to pino.)
 */
export class ConsoleOrderLogger extends WorkflowLogger {
  override logWorkflowStart(): void {}
  override logWorkflowComplete(): void {}
  override logStepStart(): void {}
  override logStepComplete(_stepName: string, result: StepResult, durationMs: number, step: StepLogInfo): void {
    if (result.status === 'failed') console.log(`   ✗ ${step.path} failed after ${durationMs.toFixed(0)} ms: ${result.error?.message ?? 'unknown error'}`);
  }
  override logStepRetry(_stepName: string, error: StepError, delayMs: number, step: StepLogInfo): void {
    console.log(`   ↻ ${step.path} attempt ${step.attempt} failed (${error.code}: ${error.message}); retrying in ${delayMs} ms`);
  }
  override logErrorHandled(stepName: string, decision: Readonly<Record<string, unknown>>): void {
    console.log(`   ⚠ error handler for ${stepName}: ${JSON.stringify(decision)}`);
  }
  override logError(message: string, error: unknown): void {
    console.error(`   ! ${message}:`, error);
  }
}

/**
 * The example's model: an OpenAI-compatible endpoint when OPENAI_API_KEY or OPENAI_BASE_URL is set (model
 * from JAF_MODEL), else the offline scripted provider.
 */
export function orderModelProvider(env: Readonly<Record<string, string | undefined>> = process.env): ChosenProvider {
  return modelProviderFromEnv(env, createOfflineModelProvider, `the offline scripted model provider (replies marked ${SCRIPTED_LABEL}; no model is called)`);
}

/**
 * An engine with the example's tools and agents registered, the model from `orderModelProvider()` and a
 * two-thread tool pool. Any option given replaces the default one.
 */
export function createOrderEngine(options: EngineOptions = {}): WorkflowEngine {
  return new WorkflowEngine({
    tools: orderTools,
    agents: orderAgents,
    modelProvider: orderModelProvider().provider,
    pool: { maxThreads: 2 },
    logger: new ConsoleOrderLogger(),
    ...options,
  });
}

// ---------------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------------

function describeStep(step: StepResult, depth: number): string[] {
  const mark = step.status === 'completed' ? '✓' : step.status === 'skipped' ? '○' : '✗';
  const attempts = step.attempts > 1 ? `, ${step.attempts} attempts` : '';
  const branch = typeof step.metadata.branch === 'string' ? `, branch ${step.metadata.branch}` : '';
  const error = step.error === undefined ? '' : ` (${step.error.code}: ${step.error.message})`;
  const line = `${'   '.repeat(depth + 1)}${mark} ${step.path}: ${step.status} [${step.kind}${branch}${attempts}, ${step.executionTimeMs.toFixed(1)} ms]${error}`;
  return [line, ...step.children.flatMap((child) => describeStep(child, depth + 1))];
}

/** Runs the seed's order through the workflow and prints what the seed prints, then each step. */
export async function main(): Promise<WorkflowResult> {
  // Create workflow
  const workflow = createOrderProcessingWorkflow();
  // Create engine
  const engine = createOrderEngine();
  // Create execution context
  const context = createOrderContext();

  console.log('🚀 Starting order processing workflow...');
  console.log(`   Agents answer from ${orderModelProvider().description}.`);
  try {
    // Execute workflow
    const result = await engine.executeWorkflow(workflow, context);

    // Display results
    console.log(`${result.status === 'completed' ? '✅' : '❌'} Workflow finished with status: ${result.status}`);
    console.log(`⏱️ Total execution time: ${result.executionTimeMs.toFixed(1)}ms`);
    console.log(`📊 Steps completed: ${result.stepsCompleted}/${result.totalSteps}`);
    if (result.status === 'failed') {
      console.log(`❌ Error: ${result.error?.message ?? 'unknown error'} (step ${result.error?.stepPath ?? '?'}, ${result.error?.code ?? '?'})`);
    } else {
      console.log(`🎉 Order ${context.initialData.order_id as string} processed successfully!`);
    }
    console.log('Steps:');
    for (const step of result.steps) for (const line of describeStep(step, 0)) console.log(line);
    const notification = result.context.get<string | undefined>('final_notification');
    if (notification !== undefined) console.log(`💬 fulfillment_agent: ${notification}`);
    return result;
  } finally {
    await engine.close();
  }
}

// Run main() only when this file is executed directly (not when imported, e.g. by the tests).
const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  main().then(
    (result) => {
      if (result.status !== 'completed') process.exitCode = 1;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
