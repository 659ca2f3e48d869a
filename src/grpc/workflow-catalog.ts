/**
 * The coordinator's workflows, kept in the store: every version CreateWorkflow accepted (a declarative
 * definition), and which version of each workflow is published (what StartRun uses when no version is
 * named). Nothing lives only in memory, so a restarted coordinator serves the same workflows; the
 * compiled versions are cached.
 */
import type { Agent } from '../agents/agent.ts';
import { parseWorkflowDocument } from '../definition/declarative/index.ts';
import type { Workflow } from '../definition/workflow.ts';
import type { WorkflowSource } from '../definition/workflow.ts';
import type { WorkflowEngine } from '../engine/engine.ts';
import type { DefinitionRecord, RunStore } from '../store/run-store.ts';
import type { Tool } from '../tools/tool.ts';
import { workflowName, type Message } from './mapping.ts';
import { toProtoTimestamp } from './proto.ts';
import { CoordinatorError } from './requests.ts';
import { CoordinatorErrorCode } from './status.ts';

/** Stored versions kept in memory (each holds its document, up to 1 MiB). */
const MAX_CACHED_VERSIONS = 256;

export interface CatalogOptions {
  readonly engine: WorkflowEngine;
  readonly store: RunStore;
  /** What documents may name; unknown names are reported by JSON Pointer before compiling. */
  readonly tools: readonly Tool[];
  readonly agents: readonly Agent[] | undefined;
}

export interface CreateRequest {
  readonly document: string;
  readonly format: 'yaml' | 'json';
  readonly validateOnly: boolean;
}

export interface ResolvedWorkflow {
  readonly workflow: WorkflowSource;
  readonly definitionHash: string;
}

export class WorkflowCatalog {
  readonly #options: CatalogOptions;
  /**
   * Published hash by workflow id, and stored declarative versions by `{id}@{hash}`: what every StartRun
   * reads. Safe to cache because one coordinator holds the store exclusively (its lock), and every write
   * goes through this catalog.
   */
  readonly #published = new Map<string, string>();
  readonly #records = new Map<string, DefinitionRecord>();

  constructor(options: CatalogOptions) {
    this.#options = options;
  }

  /** Validates, stores and (unless validate-only) publishes a document; answers the Workflow message. */
  async create(request: CreateRequest): Promise<Message> {
    const { engine, store, tools, agents } = this.#options;
    const workflow = parseWorkflowDocument(request.document, { format: request.format, tools, ...(agents === undefined ? {} : { agents }) });
    if (request.validateOnly) {
      // Compiles against the engine's registry (unknown agents, bad options) without keeping the version.
      const { definitionHash } = engine.validate(workflow);
      return workflowMessage(workflow, definitionHash, undefined);
    }
    const { workflowId, definitionHash } = await engine.registerDurably(workflow);
    await store.publishWorkflow({ workflowId, definitionHash, publishedAt: Date.now() });
    this.#published.set(workflowId, definitionHash);
    return workflowMessage(workflow, definitionHash, (await store.getDefinition(workflowId, definitionHash))?.createdAt);
  }

  /** The Workflow message of a version (default: the published one). */
  async describe(workflowId: string, definitionHash: string | undefined): Promise<Message> {
    const record = await this.#record(workflowId, definitionHash);
    return recordMessage(record);
  }

  /** The executable workflow of a version (default: the published one). */
  async resolve(workflowId: string, definitionHash: string | undefined): Promise<ResolvedWorkflow> {
    const record = await this.#record(workflowId, definitionHash);
    const workflow = await this.#options.engine.loadDefinition(record.workflowId, record.hash);
    if (workflow === undefined) {
      throw new CoordinatorError(
        CoordinatorErrorCode.WORKFLOW_NOT_FOUND,
        `workflow ${workflowId} version ${record.hash.slice(0, 12)} is stored but no longer compiles against this coordinator's tools and agents`,
      );
    }
    return { workflow, definitionHash: record.hash };
  }

  /** Published workflows by id after `after`; one more than `limit` tells the caller there is a next page. */
  async list(after: string | undefined, limit: number): Promise<{ readonly workflows: Message[]; readonly lastId: string | undefined; readonly more: boolean }> {
    const { store } = this.#options;
    const published = await store.listPublishedWorkflows({ ...(after === undefined ? {} : { after }), limit: limit + 1 });
    const page = published.slice(0, limit);
    const workflows: Message[] = [];
    for (const entry of page) {
      const record = await store.getDefinition(entry.workflowId, entry.definitionHash);
      if (record !== undefined) workflows.push(recordMessage(record));
    }
    return { workflows, lastId: page[page.length - 1]?.workflowId, more: published.length > limit };
  }

  async #record(workflowId: string, definitionHash: string | undefined): Promise<DefinitionRecord> {
    const { store } = this.#options;
    let hash = definitionHash !== undefined && definitionHash !== '' ? definitionHash : this.#published.get(workflowId);
    if (hash === undefined) {
      hash = (await store.getPublishedWorkflow(workflowId))?.definitionHash;
      if (hash !== undefined) this.#published.set(workflowId, hash);
    }
    const key = `${workflowId}@${hash}`;
    let record = this.#records.get(key);
    if (record === undefined && hash !== undefined) {
      record = await store.getDefinition(workflowId, hash);
      if (record?.kind === 'declarative') {
        // Bounded: the oldest version read drops out first (Map keeps insertion order).
        if (this.#records.size >= MAX_CACHED_VERSIONS) this.#records.delete(this.#records.keys().next().value!);
        this.#records.set(key, record);
      }
    }
    if (record === undefined || record.kind !== 'declarative') {
      const what = definitionHash !== undefined && definitionHash !== '' ? `workflow ${workflowId} version ${definitionHash}` : `workflow ${workflowId}`;
      throw new CoordinatorError(CoordinatorErrorCode.WORKFLOW_NOT_FOUND, `${what} is not registered`);
    }
    return record;
  }
}

function workflowMessage(workflow: Workflow, definitionHash: string, createdAt: number | undefined): Message {
  return {
    name: workflowName(workflow.id),
    workflowId: workflow.id,
    displayName: workflow.name === workflow.id ? '' : workflow.name,
    description: workflow.description,
    definitionHash,
    document: workflow.definitionDocument ?? '',
    totalSteps: workflow.steps.length,
    ...(createdAt === undefined ? {} : { createTime: toProtoTimestamp(createdAt) }),
  };
}

/** A stored declarative version, described from its document alone (no compiling). */
function recordMessage(record: DefinitionRecord): Message {
  const doc = JSON.parse(record.document) as { readonly name?: unknown; readonly description?: unknown; readonly steps?: unknown };
  return {
    name: workflowName(record.workflowId),
    workflowId: record.workflowId,
    displayName: typeof doc.name === 'string' && doc.name !== record.workflowId ? doc.name : '',
    description: typeof doc.description === 'string' ? doc.description : '',
    definitionHash: record.hash,
    document: record.document,
    totalSteps: Array.isArray(doc.steps) ? doc.steps.length : 0,
    createTime: toProtoTimestamp(record.createdAt),
  };
}
