/** Human-readable lines for runs, step results and run events (proto messages as the client gets them). */
import { fromProtoStruct, fromProtoTimestamp, fromProtoValue, type ProtoStruct, type ProtoTimestamp, type ProtoValue } from '../grpc/proto.ts';
import type { Msg } from './client.ts';

const lower = (value: unknown, prefix: string): string =>
  typeof value === 'string' ? value.replace(prefix, '').toLowerCase() : 'unknown';

export const runStatus = (value: unknown): string => lower(value, 'RUN_STATUS_');
export const stepStatus = (value: unknown): string => lower(value, 'STEP_STATUS_');
export const stepKind = (value: unknown): string => lower(value, 'STEP_KIND_');

export function time(ts: unknown): string {
  const ms = fromProtoTimestamp(ts as ProtoTimestamp | null | undefined);
  return ms === undefined ? '-' : new Date(ms).toISOString();
}

function clock(ts: unknown): string {
  const iso = time(ts);
  return iso === '-' ? iso : iso.slice(11, 23);
}

export function formatError(error: unknown, stepPath?: unknown): string {
  if (error === null || error === undefined || typeof error !== 'object') return '';
  const e = error as Msg;
  if (!e.code && !e.message) return '';
  const at = typeof stepPath === 'string' && stepPath !== '' ? ` at ${stepPath}` : '';
  return `${String(e.code ?? '')}: ${String(e.message ?? '')}${at}`;
}

export function json(value: unknown): string {
  return JSON.stringify(value);
}

/** One line per event; undefined for events not worth a line. */
export function formatEvent(event: Msg): string | undefined {
  const at = `[${clock(event.time)}] #${String(event.seq)}`;
  if (event.runStarted) {
    const started = event.runStarted as Msg;
    return `${at} run ${String(event.run)} started (${String(started.workflow)})`;
  }
  if (event.stepStarted) {
    const s = event.stepStarted as Msg;
    const attempt = typeof s.attempt === 'number' && s.attempt > 1 ? `, attempt ${s.attempt}` : '';
    return `${at} ▶ ${String(s.path)} started [${stepKind(s.kind)}${attempt}]`;
  }
  if (event.stepRetrying) {
    const s = event.stepRetrying as Msg;
    return `${at} ↻ ${String(s.path)} retrying in ${Number(s.delayMs ?? 0).toFixed(0)} ms (${formatError(s.error)})`;
  }
  if (event.stepFinished) {
    const s = event.stepFinished as Msg;
    const status = stepStatus(s.status);
    const mark = status === 'completed' ? '✓' : status === 'skipped' ? '○' : '✗';
    const error = formatError(s.error);
    return `${at} ${mark} ${String(s.path)} ${status} in ${Number(s.executionTimeMs ?? 0).toFixed(1)} ms${error ? ` (${error})` : ''}`;
  }
  if (event.runFinished) {
    const f = event.runFinished as Msg;
    const error = formatError(f.error, f.errorStepPath);
    return `${at} run ${String(event.run)} ${runStatus(f.status)}${error ? `: ${error}` : ''}`;
  }
  if (event.stepOutputDelta) {
    const d = event.stepOutputDelta as Msg;
    return `${at} … ${String(d.path)} (${String(d.agent)}): ${JSON.stringify(d.text)}`;
  }
  if (event.modelResponded) {
    const r = event.modelResponded as Msg;
    return `${at} ● ${String(r.path)} model call ${String(r.turn)} recorded (${String(r.agent)}${r.model ? `, ${String(r.model)}` : ''})`;
  }
  return undefined;
}

function stepLines(step: Msg, depth: number): string[] {
  const status = stepStatus(step.status);
  const mark = status === 'completed' ? '✓' : status === 'skipped' ? '○' : '✗';
  const error = formatError(step.error);
  const output = fromProtoValue(step.output as ProtoValue | undefined);
  const lines = [
    `${'  '.repeat(depth + 1)}${mark} ${String(step.path)}: ${status} [${stepKind(step.kind)}, ${Number(step.executionTimeMs ?? 0).toFixed(1)} ms]${error ? ` (${error})` : ''}${output === undefined || output === null ? '' : ` → ${json(output)}`}`,
  ];
  const children = Array.isArray(step.children) ? (step.children as Msg[]) : [];
  for (const child of children) lines.push(...stepLines(child, depth + 1));
  return lines;
}

/** The run's summary line. */
export function formatRunLine(run: Msg): string {
  return `${String(run.runId)}  ${runStatus(run.status).padEnd(9)}  ${String(run.workflow)}  created ${time(run.createTime)}`;
}

/** The run and its step results, several lines. */
export function formatRun(run: Msg): string[] {
  const lines = [
    `Run:       ${String(run.name)}`,
    `Workflow:  ${String(run.workflow)} (${String(run.definitionHash)})`,
    `Status:    ${runStatus(run.status)}`,
    `Created:   ${time(run.createTime)}`,
    `Finished:  ${time(run.finishTime)}`,
    `Variables: ${json(fromProtoStruct(run.variables as ProtoStruct | undefined) ?? {})}`,
  ];
  const error = formatError(run.error, run.errorStepPath);
  if (error) lines.push(`Error:     ${error}`);
  const steps = Array.isArray(run.stepResults) ? (run.stepResults as Msg[]) : [];
  lines.push(`Steps (${steps.length}):`);
  for (const step of steps) lines.push(...stepLines(step, 0));
  return lines;
}
