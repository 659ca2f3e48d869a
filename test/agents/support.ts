/** Helpers for the agent tests: a scripted Chat Completions server and an engine whose model is it. */
import { afterEach } from 'vitest';
import {
  OpenAIModelProvider,
  WorkflowBuilder,
  WorkflowContext,
  WorkflowEngine,
  type EngineOptions,
  type OpenAIModelProviderOptions,
  type RunEvent,
  type WorkflowStep,
} from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';
import { ChatCompletionsServer, type ScriptStep } from '../support/chat-completions-server.ts';

const open: { close(): Promise<void> }[] = [];

/** Everything opened through these helpers is closed after each test. */
export function closeAfterEach(): void {
  afterEach(async () => {
    await Promise.all(open.splice(0).map((o) => o.close()));
  });
}

export async function startServer(...script: ScriptStep[]): Promise<ChatCompletionsServer> {
  const server = await ChatCompletionsServer.start(script);
  open.push(server);
  return server;
}

export function providerFor(server: { readonly baseURL: string }, options: OpenAIModelProviderOptions = {}): OpenAIModelProvider {
  return new OpenAIModelProvider({ baseURL: server.baseURL, apiKey: 'test-key', model: 'test-model', env: {}, ...options });
}

export function engineWith(options: EngineOptions): WorkflowEngine {
  const engine = new WorkflowEngine({ logger: quietLogger(), pool: { maxThreads: 2 }, ...options });
  open.push(engine);
  return engine;
}

/** Runs one step as a workflow, collecting its events. */
export async function runStep(engine: WorkflowEngine, step: WorkflowStep, options: { signal?: AbortSignal; variables?: Record<string, unknown> } = {}) {
  const events: RunEvent[] = [];
  const result = await engine.executeWorkflow(
    new WorkflowBuilder('agent_flow').addStep(step).build(),
    new WorkflowContext({ workflowId: 'agent_flow_1', variables: options.variables ?? {} }),
    { onEvent: (e) => events.push(e), ...(options.signal === undefined ? {} : { signal: options.signal }) },
  );
  return { result, events, step: result.steps[0]! };
}

/** A quick retry policy: `attempts` in all, 1 ms initial backoff. */
export const quickRetry = (attempts: number) => ({ maxAttempts: attempts, initialDelaySeconds: 0.001, maxDelaySeconds: 0.002 });

/** Rejects after `ms`: bounds an await that would otherwise hang the test on a regression. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
