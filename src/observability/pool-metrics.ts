/**
 * The tool pool's metrics, read from its stats at scrape time (PoolStats): gauges set to the current
 * figure, counters rebuilt from the pool's own counts (a new pool reads as a reset). A figure that is
 * not a non-negative number is reported through `reject` and read as 0.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { PoolStats } from '../engine/pool-executor.ts';

export function registerPoolMetrics(registers: Registry[], read: () => PoolStats | undefined, reject: (method: string) => void): void {
  const gauge = (name: string, help: string, figure: (stats: PoolStats) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const stats = read();
        const value = stats === undefined ? 0 : figure(stats);
        if (isNonNegative(value)) return this.set(value);
        reject(`source:pool:${name}`);
        this.set(0);
      },
    });
  const counter = (name: string, help: string, figure: (stats: PoolStats) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        const stats = read();
        // A counter has no set(): rebuild it from the pool's own count.
        this.reset();
        if (stats === undefined) return;
        const value = figure(stats);
        if (isNonNegative(value)) this.inc(value);
        else reject(`source:pool:${name}`);
      },
    });
  gauge('jaf_pool_threads', 'Worker threads in the tool pool.', (s) => s.threads);
  gauge('jaf_pool_tasks_in_flight', 'Pool tasks running or waiting for a thread.', (s) => s.inFlight);
  gauge('jaf_pool_queue_depth', 'Pool tasks waiting for a thread.', (s) => s.waiting);
  gauge('jaf_pool_utilization_ratio', "Piscina's pool utilization since the pool started (0..1).", (s) => s.utilization);
  counter('jaf_pool_tasks_completed_total', 'Pool tasks completed since the pool started.', (s) => s.completed);
  counter('jaf_pool_batches_total', 'Batches of two or more fast tool tasks sent to a thread as one (see PoolToolExecutor).', (s) => s.batches);
  counter('jaf_pool_batched_tasks_total', 'Tool tasks that went to a thread in a batch of two or more.', (s) => s.batchedTasks);
}

/** A figure a counter or gauge can take (sources are user code: anything may come back). */
export function isNonNegative(value: number): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
