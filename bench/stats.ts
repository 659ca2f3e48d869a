/** Per-round figures are summarised by median and range: the machine is noisy, single times mean little. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
  /** The per-round values, in round order (kept for the JSON output). */
  readonly values: readonly number[];
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new Error('summarize: no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, n: sorted.length, values: [...values] };
}

/** Element-wise a[i] / b[i]: ratios are taken per round, so both sides of a pair saw the same machine state. */
export function pairedRatios(a: readonly number[], b: readonly number[]): number[] {
  return a.map((value, i) => value / b[i]!);
}

/** 3 significant digits, with thousands separators for large values. */
export function fmt(value: number): string {
  return value.toLocaleString('en-US', { maximumSignificantDigits: 3 });
}

export function fmtSummary(s: Summary, unit = ''): string {
  const u = unit === '' || unit === '×' ? unit : ` ${unit}`;
  return `${fmt(s.median)}${u} (${fmt(s.min)}–${fmt(s.max)}, n=${s.n})`;
}
