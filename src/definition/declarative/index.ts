/**
 * Declarative workflow definitions: YAML or JSON text, checked against `workflowDocumentSchema` and
 * compiled to a Workflow of the ordinary step classes, with CEL for conditions and parameters.
 */
import type { Agent } from '../../agents/agent.ts';
import { WorkflowDefinitionError } from '../../errors.ts';
import type { Tool } from '../../tools/tool.ts';
import type { Workflow } from '../workflow.ts';
import { compileDocument } from './compile.ts';
import { parseText, type DocumentFormat } from './text.ts';
import { validateDocument, type KnownNames } from './validate.ts';

export { workflowDocumentSchema, workflowSchemaJson, WORKFLOW_SCHEMA_ID, type WorkflowDocument, type StepDocument } from './schema.ts';
export type { DocumentFormat } from './text.ts';

export interface DocumentOptions {
  /** 'yaml' (default; YAML is a superset of JSON) or 'json'. */
  readonly format?: DocumentFormat;
  /** The tools the document may name; when given, an unknown name is reported by its JSON Pointer. */
  readonly tools?: Iterable<Tool | string>;
  /** The agents the document may name; as for tools. */
  readonly agents?: Iterable<Agent | string>;
}

function names(items: Iterable<{ readonly name: string } | string> | undefined): ReadonlySet<string> | undefined {
  if (items === undefined) return undefined;
  return new Set([...items].map((item) => (typeof item === 'string' ? item : item.name)));
}

/**
 * Parses, validates and compiles a declarative workflow document. Throws WorkflowDefinitionError whose
 * issues carry the JSON Pointer of each problem (`/steps/2/if`), a code and a message.
 */
export function parseWorkflowDocument(text: string, options: DocumentOptions | DocumentFormat = {}): Workflow {
  return compileWorkflowDocument(parseOnly(text, options), options);
}

/** As parseWorkflowDocument, for a document already parsed into plain data (e.g. from a request body). */
export function compileWorkflowDocument(document: unknown, options: DocumentOptions | DocumentFormat = {}): Workflow {
  const opts = typeof options === 'string' ? { format: options } : options;
  const known: KnownNames = { tools: names(opts.tools), agents: names(opts.agents) };
  const result = validateDocument(document, known);
  if (!result.ok) throw new WorkflowDefinitionError(result.issues);
  return compileDocument(result.value);
}

function parseOnly(text: string, options: DocumentOptions | DocumentFormat): unknown {
  const format = typeof options === 'string' ? options : options.format;
  const parsed = parseText(text, format);
  if (!parsed.ok) throw new WorkflowDefinitionError([parsed.issue]);
  return parsed.value;
}
