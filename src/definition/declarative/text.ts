/**
 * Document text to plain data: size limit first, then YAML (a superset of JSON) or JSON, then a depth
 * check done without recursion, so no input can overflow the stack of the validator or compiler.
 */
import { parseDocument } from 'yaml';
import type { DefinitionIssue } from '../../errors.ts';
import { Limits } from '../../limits.ts';

export type DocumentFormat = 'yaml' | 'json';

export type ParsedText = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly issue: DefinitionIssue };

export function parseText(text: string, format: DocumentFormat = 'yaml'): ParsedText {
  if (typeof text !== 'string') return fail('', 'WRONG_TYPE', 'a workflow document must be text (YAML or JSON)');
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > Limits.maxDefinitionBytes) {
    return fail('', 'DOCUMENT_TOO_LARGE', `a workflow document may have at most ${Limits.maxDefinitionBytes} bytes, this one has ${bytes}`);
  }
  let value: unknown;
  if (format === 'json') {
    try {
      value = JSON.parse(text);
    } catch (err) {
      return fail('', 'INVALID_JSON', `not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
  } else {
    try {
      // maxAliasCount bounds alias expansion ("billion laughs"); a `<<` merge key stays a plain key.
      const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, merge: false });
      const error = doc.errors[0];
      if (error !== undefined) {
        const at = error.linePos?.[0];
        const where = at === undefined ? '' : ` at line ${at.line}, column ${at.col}`;
        const detail = (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
        return fail('', 'INVALID_YAML', `not valid YAML${where}: ${detail} [${error.code}]`);
      }
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      return fail('', 'INVALID_YAML', `not valid YAML: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    }
  }
  const deep = tooDeep(value);
  if (deep !== undefined) return fail(deep, 'TOO_DEEP', `a workflow document may nest at most ${Limits.maxDocumentDepth} levels`);
  return { ok: true, value };
}

function fail(path: string, code: string, message: string): ParsedText {
  return { ok: false, issue: { path, code, message } };
}

/** The JSON Pointer of the first value nested deeper than the limit, or undefined. */
function tooDeep(root: unknown): string | undefined {
  const stack: { value: unknown; depth: number; path: string }[] = [{ value: root, depth: 0, path: '' }];
  while (stack.length > 0) {
    const { value, depth, path } = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (depth >= Limits.maxDocumentDepth) return path;
    for (const [key, child] of Object.entries(value)) stack.push({ value: child, depth: depth + 1, path: `${path}/${escapePointer(key)}` });
  }
  return undefined;
}

export function escapePointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}
