/**
 * jaf-workflows: JAF's workflow orchestration API in TypeScript.
 */
export { WorkflowContext, type WorkflowContextInit, type LoopPosition, type Variables } from './context.ts';
export { Workflow, type WorkflowSource } from './definition/workflow.ts';
export { WorkflowBuilder } from './definition/builder.ts';
export {
  parseWorkflowDocument,
  compileWorkflowDocument,
  workflowDocumentSchema,
  workflowSchemaJson,
  WORKFLOW_SCHEMA_ID,
  type DocumentOptions,
  type DocumentFormat,
  type WorkflowDocument,
  type StepDocument,
} from './definition/declarative/index.ts';
export { WorkflowStep, ToolStep, AgentStep, ConditionalStep, ParallelStep, LoopStep, type RetryOptions } from './definition/steps.ts';
export type {
  StepDefinition,
  StepKind,
  RetryPolicy,
  FailurePolicy,
  Condition,
  LoopCondition,
  StepErrorHandler,
  GlobalErrorHandler,
  ErrorDecision,
  ErrorAction,
  StepInfo,
  StepLike,
} from './definition/types.ts';
export { WorkflowEngine, executeWorkflowStream, type EngineOptions, type ExecuteOptions, type RecoveryReport } from './engine/engine.ts';
export { MemoryRunStore } from './store/memory-store.ts';
export { SqliteRunStore, defaultDatabasePath, type SqliteStoreOptions } from './store/sqlite-store.ts';
export { createCoordinator, type Coordinator, type CoordinatorOptions } from './grpc/coordinator.ts';
export { StoreError, StoreErrorCode, type RunStore, type RunRecord, type RunQuery, type DefinitionRecord } from './store/run-store.ts';
export { WorkflowStream, type PartialOutput } from './engine/stream.ts';
export { WatchError, WatchErrorCode, type WatchOptions } from './engine/event-bus.ts';
export { StepResult, WorkflowResult } from './engine/results.ts';
export type { RunEvent, RunStatus, StepStatus, StepResultData, RunInput, StepOutputDeltaEvent, ModelRespondedEvent, RecordedModelResponse } from './engine/events.ts';
export { ReplayModelProvider } from './agents/replay-provider.ts';
export { estimateRequestTokens, CHARS_PER_TOKEN } from './agents/budget.ts';
export type { PoolOptions, PoolResourceLimits, PoolStats } from './engine/pool-executor.ts';
export { RecordingClock, systemClock, type Clock } from './engine/clock.ts';
export { builtinTools } from './tools/builtin.ts';
export { Tool, siblingModule, type ToolContext, type ToolSpec, type InlineToolSpec, type ModuleToolSpec, type JsonSchema } from './tools/tool.ts';
export { Agent, HANDOFF_TOOL_NAME, type AgentSpec, type AgentState } from './agents/agent.ts';
export { OpenAIModelProvider, OPENAI_PROVIDER_ENV, parseRetryAfter, type OpenAIModelProviderOptions } from './agents/openai-provider.ts';
export { modelProviderFromEnv, type ChosenProvider } from './agents/provider-from-env.ts';
export type { AgentResolver } from './agents/handoff.ts';
export { MAX_RETRY_AFTER_MS } from './engine/retry.ts';
export {
  ModelError,
  ScriptedModelProvider,
  textReply,
  toolCallReply,
  type ModelProvider,
  type ModelRequest,
  type ModelResponse,
  type ChatMessage,
  type ToolCall,
  type ToolSchema,
  type TokenUsage,
  type ModelCall,
} from './agents/model-provider.ts';
export { WorkflowLogger, type StepLogInfo, type RunLogInfo, type WorkflowLoggerOptions } from './observability/workflow-logger.ts';
export { ErrorCode, NonRetryableError, WorkflowDefinitionError, type StepError, type DefinitionIssue } from './errors.ts';
export { Limits } from './limits.ts';
