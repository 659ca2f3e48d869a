/**
 * The reference RunStore, in memory: for tests and for engines that need no durability. It enforces
 * the same rules as the SQLite store (seq without gaps, one final result per step path).
 */
import type { RunEvent } from '../engine/events.ts';
import { isFinished, StoreError, StoreErrorCode, type DefinitionRecord, type PublishedWorkflow, type RunQuery, type RunRecord, type RunRequestRecord, type RunStore } from './run-store.ts';
import { finalResultPath, runStatusAfter } from './event-facts.ts';

interface StoredRun {
  record: RunRecord;
  readonly events: RunEvent[];
  readonly finalPaths: Set<string>;
}

export class MemoryRunStore implements RunStore {
  readonly location = 'memory';
  readonly #definitions = new Map<string, DefinitionRecord>();
  readonly #runs = new Map<string, StoredRun>();
  readonly #published = new Map<string, PublishedWorkflow>();
  readonly #requests = new Map<string, RunRequestRecord>();

  async putDefinition(definition: DefinitionRecord): Promise<void> {
    const key = `${definition.workflowId}@${definition.hash}`;
    if (!this.#definitions.has(key)) this.#definitions.set(key, definition);
  }

  async getDefinition(workflowId: string, hash: string): Promise<DefinitionRecord | undefined> {
    return this.#definitions.get(`${workflowId}@${hash}`);
  }

  async publishWorkflow(published: PublishedWorkflow): Promise<void> {
    if (!this.#definitions.has(`${published.workflowId}@${published.definitionHash}`)) {
      throw new StoreError(StoreErrorCode.STORE_CONFLICT, `workflow ${published.workflowId} version ${published.definitionHash} is not stored`);
    }
    this.#published.set(published.workflowId, published);
  }

  async getPublishedWorkflow(workflowId: string): Promise<PublishedWorkflow | undefined> {
    return this.#published.get(workflowId);
  }

  async listPublishedWorkflows(query: { readonly after?: string; readonly limit: number }): Promise<PublishedWorkflow[]> {
    const after = query.after;
    return [...this.#published.values()]
      .filter((p) => after === undefined || p.workflowId > after)
      .sort((a, b) => (a.workflowId < b.workflowId ? -1 : 1))
      .slice(0, query.limit);
  }

  async claimRunRequest(request: RunRequestRecord): Promise<RunRequestRecord> {
    const stored = this.#requests.get(request.requestId);
    if (stored !== undefined) return stored;
    this.#requests.set(request.requestId, request);
    return request;
  }

  async releaseRunRequest(requestId: string, runId: string): Promise<void> {
    if (this.#requests.get(requestId)?.runId === runId) this.#requests.delete(requestId);
  }

  append(events: readonly RunEvent[]): Promise<void> {
    try {
      for (const event of events) this.#appendOne(event);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #appendOne(event: RunEvent): void {
    let run = this.#runs.get(event.runId);
    if (event.type === 'run_started') {
      if (run !== undefined) throw new StoreError(StoreErrorCode.STORE_CONFLICT, `run ${event.runId} already exists`);
      run = {
        record: { runId: event.runId, workflowId: event.workflowId, definitionHash: event.definitionHash, status: 'running', createdAt: event.at, finishedAt: undefined, lastSeq: 0 },
        events: [],
        finalPaths: new Set(),
      };
      this.#runs.set(event.runId, run);
    }
    if (run === undefined) throw new StoreError(StoreErrorCode.STORE_CONFLICT, `event seq ${event.seq} for unknown run ${event.runId}`);
    if (event.seq !== run.record.lastSeq + 1) {
      throw new StoreError(StoreErrorCode.STORE_CONFLICT, `run ${event.runId}: event seq ${event.seq} after ${run.record.lastSeq}`);
    }
    const path = finalResultPath(event);
    if (path !== undefined) {
      if (run.finalPaths.has(path)) throw new StoreError(StoreErrorCode.STORE_CONFLICT, `run ${event.runId}: step ${path} already has a result`);
      run.finalPaths.add(path);
    }
    run.events.push(event);
    const status = runStatusAfter(run.record.status, event);
    const finishedAt = run.record.finishedAt ?? (isFinished(status) ? event.at : undefined);
    run.record = { ...run.record, status, finishedAt, lastSeq: event.seq };
  }

  async readEvents(runId: string, afterSeq = 0): Promise<RunEvent[]> {
    return (this.#runs.get(runId)?.events ?? []).filter((e) => e.seq > afterSeq);
  }

  async readFirstAndLastEvents(runId: string): Promise<{ first: RunEvent; last: RunEvent } | undefined> {
    const events = this.#runs.get(runId)?.events;
    return events === undefined || events.length === 0 ? undefined : { first: events[0]!, last: events[events.length - 1]! };
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    return this.#runs.get(runId)?.record;
  }

  async listRuns(query: RunQuery): Promise<RunRecord[]> {
    const before = query.before;
    return [...this.#runs.values()]
      .map((r) => r.record)
      .filter((r) => (query.workflowId === undefined || r.workflowId === query.workflowId) && (query.status === undefined || r.status === query.status))
      .filter((r) => before === undefined || r.createdAt < before.createdAt || (r.createdAt === before.createdAt && r.runId < before.runId))
      .sort((a, b) => b.createdAt - a.createdAt || (a.runId < b.runId ? 1 : -1))
      .slice(0, query.limit);
  }

  async unfinishedRuns(): Promise<RunRecord[]> {
    return [...this.#runs.values()].map((r) => r.record).filter((r) => !isFinished(r.status));
  }

  async pruneFinished(finishedBefore: number): Promise<number> {
    const pruned = new Set<string>();
    for (const [runId, run] of this.#runs) {
      if (run.record.finishedAt !== undefined && run.record.finishedAt < finishedBefore) {
        this.#runs.delete(runId);
        pruned.add(runId);
      }
    }
    for (const [requestId, request] of this.#requests) if (pruned.has(request.runId)) this.#requests.delete(requestId);
    return pruned.size;
  }

  async close(): Promise<void> {}
}
