/**
 * One attempt of each step kind, as a handler table keyed by kind (the compiler checks it is complete),
 * and the replay of a recorded composite. An attempt never throws: user functions that throw become
 * USER_FUNCTION_ERROR, aborts become the abort's StepError. Retries, timeouts, conditions and events
 * are the caller's (`Run.executeStep`).
 */
import type { WorkflowContext } from '../context.ts';
import type { StepKind } from '../definition/types.ts';
import type { Attempt, AttemptOutcome } from './attempt-support.ts';
import { conditionalAttempt, loopAttempt, parallelAttempt, replayConditional, replayLoop, replayParallel } from './composite-attempts.ts';
import type { StepResultData } from './events.ts';
import { agentAttempt, toolAttempt } from './leaf-attempts.ts';

type AttemptRunners = { readonly [K in StepKind]: (a: Attempt<K>) => Promise<AttemptOutcome> };

export const attemptRunners: AttemptRunners = {
  tool: toolAttempt,
  agent: agentAttempt,
  conditional: conditionalAttempt,
  parallel: parallelAttempt,
  loop: loopAttempt,
};

type Replayers = { readonly [K in Exclude<StepKind, 'tool' | 'agent'>]: (a: Attempt<K>, recorded: StepResultData) => Promise<WorkflowContext> };

/**
 * The context after a recorded, completed composite, rebuilt from its children's records and the
 * decisions it recorded (which branch, which winner, how many iterations): no user function runs.
 */
export const replayers: Replayers = {
  conditional: replayConditional,
  parallel: replayParallel,
  loop: replayLoop,
};
