/** Model request outcomes and token use (recorded in WorkflowMetrics), as a ModelProvider wrapper. */
import type { ModelProvider, ModelResponse } from '../agents/model-provider.ts';
import type { WorkflowMetrics } from './metrics.ts';

/**
 * `provider`, recording each request's outcome and token usage in `metrics`: one wrapper instead of
 * hooks in the agent loop. A request that fails after its signal aborted counts as `cancelled`.
 */
export function withModelMetrics(provider: ModelProvider, metrics: WorkflowMetrics): ModelProvider {
  return {
    async getCompletion(request) {
      const labels = { model: request.model, agent: request.agent.name };
      let response: ModelResponse;
      try {
        response = await provider.getCompletion(request);
      } catch (err) {
        metrics.observeModelRequest({ ...labels, outcome: request.signal.aborted ? 'cancelled' : 'error' });
        throw err;
      }
      const answered = { ...labels, model: (response as Partial<ModelResponse> | null | undefined)?.model ?? request.model };
      metrics.observeModelRequest({ ...answered, outcome: 'ok' });
      const usage = (response as Partial<ModelResponse> | null | undefined)?.usage;
      if (usage !== undefined) metrics.observeModelUsage({ ...answered, promptTokens: usage.promptTokens, completionTokens: usage.completionTokens });
      return response;
    },
  };
}
