import { pino, type Logger, type LoggerOptions } from 'pino';
import type { WorkflowContext } from '../context.ts';
import type { StepKind } from '../definition/types.ts';
import type { StepError } from '../errors.ts';
import type { StepResult, WorkflowResult } from '../engine/results.ts';

export interface RunLogInfo {
  readonly runId: string;
  /** The workflow definition's id. */
  readonly workflowId: string;
}

export interface StepLogInfo extends RunLogInfo {
  readonly path: string;
  readonly kind: StepKind;
  readonly attempt: number;
}

export interface WorkflowLoggerOptions {
  /** A pino logger to write to; default: JSON to stdout at LOG_LEVEL (default info). */
  readonly logger?: Logger;
}

let rootLogger: Logger | undefined;

/**
 * Secrets pino censors wherever a log call passes them (an options object, request headers, gRPC
 * metadata): the bearer token, API keys, authorization headers.
 */
export const REDACTED_PATHS: readonly string[] = [
  'token',
  '*.token',
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  '*.headers.authorization',
  '*.metadata.authorization',
];

/** pino options every logger of this project starts from: the service name, and secrets redacted. */
export function basePinoOptions(level: string): LoggerOptions {
  return { level, base: { service: 'jaf-workflows' }, redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' } };
}

/** The process-wide default: JSON lines on stdout, level from LOG_LEVEL (read when first used; default info). */
export function defaultLogger(): Logger {
  if (rootLogger === undefined) {
    const level = logLevelFromEnv();
    rootLogger = pino(basePinoOptions(level));
    if (level !== (process.env.LOG_LEVEL ?? 'info')) rootLogger.warn(`LOG_LEVEL=${process.env.LOG_LEVEL} is not a pino level; logging at info`);
  }
  return rootLogger;
}

/** LOG_LEVEL if it names a pino level (or silent), else info. */
export function logLevelFromEnv(): string {
  const wanted = process.env.LOG_LEVEL ?? 'info';
  return wanted in pino.levels.values || wanted === 'silent' ? wanted : 'info';
}

/**
 * Workflow lifecycle logging, on pino by default. Subclass and override any method (the seed's
 * `DetailedWorkflowLogger` overrides `logStepStart` and `logStepComplete`); the rest keep logging.
 * Lines carry `runId`/`workflowId`, and step lines `stepPath`/`attempt`, through child loggers.
 */
export class WorkflowLogger {
  protected readonly log: Logger;

  constructor(options: WorkflowLoggerOptions = {}) {
    this.log = options.logger ?? defaultLogger();
  }

  logWorkflowStart(workflowId: string, ctx: WorkflowContext, run: RunLogInfo): void {
    if (this.log.isLevelEnabled('info')) this.runLog(run).info({ contextWorkflowId: ctx.workflowId }, `workflow ${workflowId} started`);
  }

  logWorkflowComplete(result: WorkflowResult): void {
    const completed = result.status === 'completed';
    if (this.log.isLevelEnabled(completed ? 'info' : 'warn')) {
      const log = this.runLog(result);
      const fields = { status: result.status, durationMs: result.totalExecutionTimeMs, stepsCompleted: result.stepsCompleted, totalSteps: result.totalSteps };
      if (completed) log.info(fields, `workflow ${result.workflowId} completed`);
      else log.warn({ ...fields, error: result.error }, `workflow ${result.workflowId} ${result.status}`);
    }
  }

  /**
   * Whether step starts and successful completions can produce anything: true when a subclass overrides
   * `logStepStart` or `logStepComplete`, or debug is enabled. The engine skips building their arguments
   * otherwise (failures are always passed on).
   */
  observesSteps(): boolean {
    return (
      this.logStepStart !== WorkflowLogger.prototype.logStepStart ||
      this.logStepComplete !== WorkflowLogger.prototype.logStepComplete ||
      this.log.isLevelEnabled('debug')
    );
  }

  logStepStart(stepName: string, _ctx: WorkflowContext, step: StepLogInfo): void {
    if (this.log.isLevelEnabled('debug')) this.stepLog(step).debug(`step ${stepName} started`);
  }

  logStepComplete(stepName: string, result: StepResult, durationMs: number, step: StepLogInfo): void {
    if (result.status === 'failed') {
      if (!this.log.isLevelEnabled('warn')) return;
      this.stepLog(step).warn({ status: result.status, durationMs, error: result.error }, `step ${stepName} failed`);
    } else if (this.log.isLevelEnabled('debug')) {
      this.stepLog(step).debug({ status: result.status, durationMs }, `step ${stepName} ${result.status}`);
    }
  }

  logStepRetry(stepName: string, error: StepError, delayMs: number, step: StepLogInfo): void {
    if (this.log.isLevelEnabled('info')) this.stepLog(step).info({ error, delayMs }, `step ${stepName} will retry after attempt ${step.attempt}`);
  }

  logErrorHandled(stepName: string, decision: Readonly<Record<string, unknown>>, step: StepLogInfo): void {
    if (this.log.isLevelEnabled('warn')) this.stepLog(step).warn({ decision }, `error handler decided ${String(decision.action)} for step ${stepName}`);
  }

  logError(message: string, error: unknown, run: RunLogInfo): void {
    this.runLog(run).error({ err: error }, message);
  }

  /** A child logger bound to the run. Made per line: the engine only asks when the line is logged. */
  protected runLog(run: RunLogInfo): Logger {
    return this.log.child({ runId: run.runId, workflowId: run.workflowId });
  }

  /** A child logger bound to the run and the step. */
  protected stepLog(step: StepLogInfo): Logger {
    return this.runLog(step).child({ stepPath: step.path, attempt: step.attempt });
  }
}
