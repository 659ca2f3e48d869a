/**
 * Replays a recorded run's model responses: a run started with `replayModelResponsesFrom` gets each
 * agent step's responses from the recording (the source run's `model_responded` events), keyed by step
 * path, attempt and model call, and calls no model. Asking for a response that was never recorded (the
 * workflow changed, or took another path) fails the step loudly with MODEL_RESPONSE_NOT_RECORDED.
 */
import { ErrorCode, type StepError } from '../errors.ts';
import type { ModelRespondedEvent, RunEvent } from '../engine/events.ts';
import { ModelError, type ModelProvider, type ModelRequest, type ModelResponse } from './model-provider.ts';

function key(path: string, attempt: number, turn: number): string {
  return `${path}#${attempt}#${turn}`;
}

export class ReplayModelProvider implements ModelProvider {
  readonly source: string;
  readonly #recorded: ReadonlyMap<string, ModelRespondedEvent>;
  /** The recorded run's attempts that failed and were retried, by `path#attempt`: a model call they never got answered failed. */
  readonly #failedAttempts: ReadonlyMap<string, StepError>;

  private constructor(source: string, recorded: ReadonlyMap<string, ModelRespondedEvent>, failedAttempts: ReadonlyMap<string, StepError>) {
    this.source = source;
    this.#recorded = recorded;
    this.#failedAttempts = failedAttempts;
  }

  /** From a run's events (its `model_responded` and `step_retrying` ones); `source` names the recording in errors. */
  static fromEvents(events: readonly RunEvent[], source: string): ReplayModelProvider {
    const recorded = new Map<string, ModelRespondedEvent>();
    const failedAttempts = new Map<string, StepError>();
    for (const event of events) {
      if (event.type === 'model_responded') recorded.set(key(event.path, event.attempt, event.turn), event);
      else if (event.type === 'step_retrying') failedAttempts.set(`${event.path}#${event.attempt}`, event.error);
    }
    return new ReplayModelProvider(source, recorded, failedAttempts);
  }

  /** How many responses the recording holds. */
  get size(): number {
    return this.#recorded.size;
  }

  async getCompletion(request: ModelRequest): Promise<ModelResponse> {
    const call = request.call;
    if (call === undefined) {
      throw new ModelError(ErrorCode.MODEL_RESPONSE_NOT_RECORDED, `agent ${request.agent.name}: a replay serves only engine steps (the request names no step)`, { retryable: false });
    }
    const recorded = this.#recorded.get(key(call.path, call.attempt, call.turn));
    const where = `step ${call.path} attempt ${call.attempt} model call ${call.turn}`;
    if (recorded === undefined) {
      // The recorded attempt failed here (a transient model error, a timeout) and was retried: fail the same way.
      const failed = this.#failedAttempts.get(`${call.path}#${call.attempt}`);
      if (failed !== undefined) {
        throw new ModelError(failed.code as ErrorCode, `${this.source} at ${where}: ${failed.message}`, {
          retryable: failed.retryable,
          details: { ...failed.details, path: call.path, attempt: call.attempt, turn: call.turn },
        });
      }
      throw new ModelError(ErrorCode.MODEL_RESPONSE_NOT_RECORDED, `${this.source} recorded no model response for ${where} (the workflow asked for one the recorded run never made)`, {
        retryable: false,
        details: { path: call.path, attempt: call.attempt, turn: call.turn },
      });
    }
    if (recorded.agent !== request.agent.name) {
      throw new ModelError(ErrorCode.MODEL_RESPONSE_NOT_RECORDED, `${this.source} recorded agent ${recorded.agent} at ${where}, but agent ${request.agent.name} asked`, {
        retryable: false,
        details: { path: call.path, attempt: call.attempt, turn: call.turn },
      });
    }
    const { content, toolCalls, usage } = recorded.response;
    return {
      message: toolCalls === undefined || toolCalls.length === 0 ? { content } : { content, toolCalls },
      ...(usage === undefined ? {} : { usage }),
      ...(recorded.model === undefined ? {} : { model: recorded.model }),
    };
  }
}
