/**
 * The JSON Schema of a declarative workflow document (YAML or JSON). This constant is the one source:
 * `schema/workflow.schema.json` is `workflowSchemaJson()` written out (a test keeps the two equal).
 *
 * A document:
 *
 *   id, name?, description?, steps: [step, ...], onError?: [rule, ...]
 *
 * Every step has an `id` and exactly one kind key, plus the common options:
 *
 *   tool: name      args?: { key: CEL }, staticArgs?: { key: JSON }
 *   agent: name     input?: CEL (a string) | message?: static string, context?: CEL
 *   if: CEL         then?: step, else?: step
 *   parallel: [..]  waitForAll?, failurePolicy?, minimumSuccessCount?
 *   loop: step      while?: CEL (sees `iteration`), maxIterations?
 *
 *   common: when?: CEL | [CEL], retry?: n | { maxRetries | maxAttempts, initialDelaySeconds?,
 *           maxDelaySeconds?, backoffCoefficient? }, timeoutSeconds?, outputKey?,
 *           fallback?: step (top-level steps only: runs in place of the step when it fails)
 *
 * CEL expressions see `vars` (the run's variables) and `metadata` (the run's metadata); loop
 * conditions also see `iteration` (0-based int); `onError` rules see `error` ({ code, message,
 * retryable }), `step` ({ id, path, kind, attempts }) and `vars`.
 */
import { Limits } from '../../limits.ts';

export const WORKFLOW_SCHEMA_ID = 'https://jaf-workflows.dev/schema/workflow.schema.json';

/** Descriptions that mark two rules, so the validator can tell their errors apart. */
export const CEL_RULE = 'A CEL expression.';
export const STEP_KIND_RULE = 'Exactly one kind key: tool, agent, if, parallel or loop.';

const cel = { $ref: '#/$defs/cel' } as const;
const step = { $ref: '#/$defs/step' } as const;
const name = { type: 'string', minLength: 1, maxLength: 256 } as const;

/** Options every step kind accepts. */
const commonProperties = {
  id: { $ref: '#/$defs/stepId' },
  description: { type: 'string', maxLength: 4096 },
  when: {
    description: 'The step runs only if every condition is true; otherwise it is skipped.',
    oneOf: [cel, { type: 'array', items: cel, minItems: 1, maxItems: 32 }],
  },
  retry: { $ref: '#/$defs/retry' },
  timeoutSeconds: { type: 'number', exclusiveMinimum: 0, maximum: Limits.maxTimeoutSeconds, description: 'Per attempt.' },
  outputKey: { ...name, description: 'Store the whole output under this variable instead of merging it.' },
  fallback: { ...step, description: 'Top-level steps only: a step run in place of this one when it fails.' },
} as const;

function kind(description: string, required: readonly string[], properties: Record<string, unknown>) {
  return {
    description,
    type: 'object',
    required: ['id', ...required],
    properties: { ...commonProperties, ...properties },
    additionalProperties: false,
  } as const;
}

export const workflowDocumentSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: WORKFLOW_SCHEMA_ID,
  title: 'jaf-workflows declarative workflow',
  type: 'object',
  required: ['id', 'steps'],
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    id: { type: 'string', minLength: 1, maxLength: 256 },
    name: { type: 'string', maxLength: 256 },
    description: { type: 'string', maxLength: 4096 },
    steps: { type: 'array', minItems: 1, maxItems: Limits.maxStepsPerWorkflow, items: step },
    onError: {
      description: 'For a failed top-level step without a fallback: the first rule whose `when` holds decides; none: fail.',
      type: 'array',
      maxItems: 64,
      items: { $ref: '#/$defs/errorRule' },
    },
  },
  $defs: {
    cel: {
      description: CEL_RULE,
      type: 'string',
      minLength: 1,
      maxLength: Limits.maxExpressionLength,
    },
    stepId: {
      type: 'string',
      minLength: 1,
      maxLength: Limits.maxStepIdLength,
      pattern: Limits.stepIdPattern.source,
    },
    retry: {
      description: 'A number n: n retries after the first attempt.',
      oneOf: [
        { type: 'integer', minimum: 0, maximum: Limits.maxRetries },
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            maxRetries: { type: 'integer', minimum: 0, maximum: Limits.maxRetries },
            maxAttempts: { type: 'integer', minimum: 1, maximum: Limits.maxRetries + 1 },
            initialDelaySeconds: { type: 'number', minimum: 0, maximum: Limits.maxTimeoutSeconds },
            maxDelaySeconds: { type: 'number', minimum: 0, maximum: Limits.maxTimeoutSeconds },
            backoffCoefficient: { type: 'number', minimum: 1, maximum: 10 },
          },
          not: { required: ['maxRetries', 'maxAttempts'] },
        },
      ],
    },
    step: {
      type: 'object',
      required: ['id'],
      allOf: [
        {
          description: STEP_KIND_RULE,
          oneOf: [{ required: ['tool'] }, { required: ['agent'] }, { required: ['if'] }, { required: ['parallel'] }, { required: ['loop'] }],
        },
        { if: { required: ['tool'] }, then: { $ref: '#/$defs/toolStep' } },
        { if: { required: ['agent'] }, then: { $ref: '#/$defs/agentStep' } },
        { if: { required: ['if'] }, then: { $ref: '#/$defs/conditionalStep' } },
        { if: { required: ['parallel'] }, then: { $ref: '#/$defs/parallelStep' } },
        { if: { required: ['loop'] }, then: { $ref: '#/$defs/loopStep' } },
      ],
    },
    toolStep: kind('Runs a registered tool.', ['tool'], {
      tool: name,
      args: { description: 'Arguments computed when the step runs: one CEL expression per key.', type: 'object', maxProperties: 256, additionalProperties: cel },
      staticArgs: { description: 'Fixed arguments (any JSON), overridden by `args` on a clash.', type: 'object' },
    }),
    agentStep: kind('Runs a registered agent.', ['agent'], {
      agent: name,
      input: { ...cel, description: 'The user message: a CEL expression giving a string.' },
      message: { type: 'string', maxLength: 65536, description: 'A fixed user message (instead of `input`).' },
      context: { ...cel, description: 'What the agent sees as its context (default: the run userContext).' },
      tokenBudget: { type: 'integer', minimum: 1, maximum: Limits.maxTokenBudget, description: 'Model tokens (prompt + completion) the step may use over all attempts.' },
      model: { type: 'string', minLength: 1, maxLength: 256, description: "The model the agent uses in this step, instead of its own." },
    }),
    conditionalStep: kind('Runs `then` if the condition holds, else `else`.', ['if'], { if: cel, then: step, else: step }),
    parallelStep: kind('Runs its branches at once.', ['parallel'], {
      parallel: { type: 'array', minItems: 1, maxItems: Limits.maxParallelBranches, items: step },
      waitForAll: { type: 'boolean' },
      failurePolicy: { enum: ['fail_fast', 'continue_on_partial_failure'] },
      minimumSuccessCount: { type: 'integer', minimum: 0, maximum: Limits.maxParallelBranches },
    }),
    loopStep: kind('Runs its body while `while` holds, at most maxIterations times.', ['loop'], {
      loop: step,
      while: { ...cel, description: 'Checked before each iteration; sees `iteration` (0-based).' },
      maxIterations: { type: 'integer', minimum: 0, maximum: Limits.maxLoopIterations },
    }),
    errorRule: {
      type: 'object',
      required: ['action'],
      additionalProperties: false,
      properties: {
        when: cel,
        action: { enum: ['retry', 'fail', 'continue'] },
        delaySeconds: { type: 'number', minimum: 0, maximum: Limits.maxTimeoutSeconds },
        annotations: { description: 'Kept in the step result metadata and logged (escalate, notify_team...).', type: 'object' },
      },
    },
  },
} as const;

/** The schema as written to `schema/workflow.schema.json`. */
export function workflowSchemaJson(): string {
  return `${JSON.stringify(workflowDocumentSchema, null, 2)}\n`;
}

// The document's shape, as the validator guarantees it.

export type RetryDocument =
  | number
  | { maxRetries?: number; maxAttempts?: number; initialDelaySeconds?: number; maxDelaySeconds?: number; backoffCoefficient?: number };

interface StepDocumentBase {
  id: string;
  description?: string;
  when?: string | string[];
  retry?: RetryDocument;
  timeoutSeconds?: number;
  outputKey?: string;
  fallback?: StepDocument;
}

export interface ToolStepDocument extends StepDocumentBase {
  tool: string;
  args?: Record<string, string>;
  staticArgs?: Record<string, unknown>;
}

export interface AgentStepDocument extends StepDocumentBase {
  agent: string;
  input?: string;
  message?: string;
  context?: string;
  tokenBudget?: number;
  model?: string;
}

export interface ConditionalStepDocument extends StepDocumentBase {
  if: string;
  then?: StepDocument;
  else?: StepDocument;
}

export interface ParallelStepDocument extends StepDocumentBase {
  parallel: StepDocument[];
  waitForAll?: boolean;
  failurePolicy?: 'fail_fast' | 'continue_on_partial_failure';
  minimumSuccessCount?: number;
}

export interface LoopStepDocument extends StepDocumentBase {
  loop: StepDocument;
  while?: string;
  maxIterations?: number;
}

export type StepDocument = ToolStepDocument | AgentStepDocument | ConditionalStepDocument | ParallelStepDocument | LoopStepDocument;

export interface ErrorRuleDocument {
  when?: string;
  action: 'retry' | 'fail' | 'continue';
  delaySeconds?: number;
  annotations?: Record<string, unknown>;
}

export interface WorkflowDocument {
  $schema?: string;
  id: string;
  name?: string;
  description?: string;
  steps: StepDocument[];
  onError?: ErrorRuleDocument[];
}
