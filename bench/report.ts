/** The shape every figure reports, and the human and JSON renderings of the results. */
import { cpus, loadavg, totalmem } from 'node:os';
import { version as piscinaVersion } from 'piscina';
import { fmt, fmtSummary, type Summary } from './stats.ts';

export interface Measured {
  readonly label: string;
  readonly unit: string;
  readonly summary: Summary;
}

export interface Target {
  /** Which summary the target applies to. */
  readonly on: 'figure' | 'ratio';
  readonly op: '<=' | '>=';
  readonly value: number;
  readonly text: string;
}

export interface FigureResult {
  readonly id: string;
  readonly title: string;
  readonly figure: Measured;
  readonly baseline: Measured;
  /** figure / baseline (or baseline / figure, named in `label`), computed per round. */
  readonly ratio: { readonly label: string; readonly summary: Summary };
  readonly target: Target;
  readonly verdict: 'pass' | 'fail';
  /** Supporting measurements (calibration, secondary figures) worth printing beside the figure. */
  readonly notes: readonly string[];
}

export function verdictOf(target: Target, figure: Summary, ratio: Summary): 'pass' | 'fail' {
  const value = target.on === 'figure' ? figure.median : ratio.median;
  return (target.op === '<=' ? value <= target.value : value >= target.value) ? 'pass' : 'fail';
}

export interface Machine {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly piscina: string;
  readonly loadAverage1m: number;
}

export function machine(): Machine {
  const list = cpus();
  return {
    cpuModel: list[0]?.model ?? 'unknown',
    cpus: list.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    piscina: piscinaVersion,
    loadAverage1m: loadavg()[0]!,
  };
}

export function header(m: Machine): string {
  return [
    'jaf-workflows benchmark',
    `machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB · node ${m.node} · piscina ${m.piscina} · load avg (1 min) at start ${m.loadAverage1m.toFixed(2)}`,
    'Each figure: median (min–max, n rounds) beside its baseline measured in the same rounds; ratios are paired per round.',
  ].join('\n');
}

export function detail(r: FigureResult): string {
  return [
    `${r.id} ${r.title}`,
    `  figure:   ${r.figure.label}: ${fmtSummary(r.figure.summary, r.figure.unit)}`,
    `  baseline: ${r.baseline.label}: ${fmtSummary(r.baseline.summary, r.baseline.unit)}`,
    `  ratio:    ${r.ratio.label}: ${fmtSummary(r.ratio.summary, '×')}`,
    `  target:   ${r.target.text} → ${r.verdict.toUpperCase()}`,
    ...r.notes.map((n) => `  note:     ${n}`),
  ].join('\n');
}

export function tableRows(results: readonly FigureResult[]): Record<string, string>[] {
  return results.map((r) => ({
    id: r.id,
    figure: `${fmt(r.figure.summary.median)} ${r.figure.unit}`,
    baseline: `${fmt(r.baseline.summary.median)} ${r.baseline.unit}`,
    ratio: `${fmt(r.ratio.summary.median)}×`,
    target: r.target.text,
    verdict: r.verdict,
  }));
}
