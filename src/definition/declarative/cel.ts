/**
 * CEL expressions of declarative definitions (@bufbuild/cel: non-Turing-complete, RE2 regexes, never
 * eval/vm). Bounded: the text has a length limit, the parsed tree a node limit, comprehensions
 * (`map`, `filter`, `all`, `exists`...) may not nest, string concatenation has a size cap while the
 * expression runs, and the result is converted to JSON within the step output limit.
 */
import { CelScalar, celEnv, celFunc, isCelError, isCelList, isCelMap, isCelUint, parse, plan, type CelEnv, type CelValue } from '@bufbuild/cel';
import { Limits } from '../../limits.ts';

/** The variables an expression may name, by where it appears. */
export type ExpressionScope = 'step' | 'loop' | 'errorRule';

const scopeVariables: Readonly<Record<ExpressionScope, readonly string[]>> = {
  step: ['vars', 'metadata'],
  loop: ['vars', 'metadata', 'iteration'],
  errorRule: ['vars', 'metadata', 'error', 'step'],
};

export interface ExpressionProblem {
  readonly code: 'CEL_SYNTAX_ERROR' | 'CEL_UNKNOWN_VARIABLE' | 'CEL_TOO_COMPLEX' | 'EXPRESSION_TOO_LONG';
  readonly message: string;
}

export type Bindings = Readonly<Record<string, unknown>>;

/** A compiled expression: evaluate it with bindings; it throws an Error if evaluation fails. */
export interface Expression {
  readonly source: string;
  evaluate(bindings: Bindings): unknown;
}

/** String `+` with a cap, replacing the standard overload, so repeated concatenation cannot exhaust memory. */
const boundedConcat = celFunc('_+_', [CelScalar.STRING, CelScalar.STRING], CelScalar.STRING, (l: string, r: string) => {
  if (l.length + r.length > Limits.maxExpressionStringLength) {
    throw new Error(`string concatenation would exceed ${Limits.maxExpressionStringLength} characters`);
  }
  return l + r;
});

const environments = new Map<ExpressionScope, CelEnv>();
function environment(scope: ExpressionScope): CelEnv {
  let env = environments.get(scope);
  if (env === undefined) {
    const variables = Object.fromEntries(scopeVariables[scope].map((v) => [v, v === 'iteration' ? CelScalar.INT : CelScalar.DYN]));
    env = celEnv({ variables, funcs: [boundedConcat] });
    environments.set(scope, env);
  }
  return env;
}

/** 1-based line and column of a character offset in `text`. */
function position(text: string, offset: number): string {
  let line = 1;
  let column = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === '\n') {
      line += 1;
      column = 1;
    } else column += 1;
  }
  return `line ${line}, column ${column}`;
}

/** Compiles `source` for `scope`, or returns the first problem (with its position where there is one). */
export function compileExpression(source: string, scope: ExpressionScope): Expression | ExpressionProblem {
  if (source.length > Limits.maxExpressionLength) {
    return { code: 'EXPRESSION_TOO_LONG', message: `a CEL expression may have at most ${Limits.maxExpressionLength} characters, this one has ${source.length}` };
  }
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(source);
  } catch (err) {
    if (err instanceof RangeError) return { code: 'CEL_TOO_COMPLEX', message: 'the CEL expression nests too deeply' };
    const e = err as { location?: { start?: { line?: number; column?: number } }; rawMessage?: unknown; message?: unknown };
    const start = e.location?.start;
    const detail = typeof e.rawMessage === 'string' ? e.rawMessage : String(e.message);
    const where = start?.line !== undefined ? `line ${start.line}, column ${start.column ?? 0}` : 'unknown position';
    return { code: 'CEL_SYNTAX_ERROR', message: `CEL syntax error at ${where}: ${detail}` };
  }
  const positions = parsed.sourceInfo?.positions ?? {};
  const problem = inspect(parsed.expr, new Set(scopeVariables[scope]), (id) => {
    const offset = positions[Number(id)];
    return offset === undefined ? 'unknown position' : position(source, offset);
  });
  if (problem !== undefined) return problem;
  const program = plan(environment(scope), parsed);
  return {
    source,
    evaluate(bindings: Bindings): unknown {
      const result = program(bindings as never);
      if (isCelError(result)) throw new Error(`CEL expression ${JSON.stringify(source)} failed: ${result.message}`);
      return toJson(result, { left: Limits.maxOutputBytes });
    },
  };
}

type Expr = ReturnType<typeof parse>['expr'];

/**
 * Walks the parsed tree without recursion: counts nodes, rejects unknown variables and nested
 * comprehensions. Comprehension variables are in scope inside their comprehension.
 */
function inspect(root: Expr, declared: ReadonlySet<string>, where: (id: bigint) => string): ExpressionProblem | undefined {
  const stack: { expr: Expr | undefined; bound: ReadonlySet<string>; inComprehension: boolean }[] = [{ expr: root, bound: declared, inComprehension: false }];
  let nodes = 0;
  while (stack.length > 0) {
    const { expr, bound, inComprehension } = stack.pop()!;
    if (expr === undefined) continue;
    nodes += 1;
    if (nodes > Limits.maxExpressionNodes) return { code: 'CEL_TOO_COMPLEX', message: `a CEL expression may have at most ${Limits.maxExpressionNodes} nodes` };
    const push = (e: Expr | undefined, b = bound, c = inComprehension) => stack.push({ expr: e, bound: b, inComprehension: c });
    const kind = expr.exprKind;
    switch (kind.case) {
      case 'identExpr':
        if (!bound.has(kind.value.name)) {
          const known = [...declared].join(', ');
          return { code: 'CEL_UNKNOWN_VARIABLE', message: `unknown variable ${kind.value.name} at ${where(expr.id)} (this expression may use: ${known})` };
        }
        break;
      case 'selectExpr':
        push(kind.value.operand);
        break;
      case 'callExpr':
        push(kind.value.target);
        for (const arg of kind.value.args) push(arg);
        break;
      case 'listExpr':
        for (const e of kind.value.elements) push(e);
        break;
      case 'structExpr':
        for (const entry of kind.value.entries) {
          if (entry.keyKind.case === 'mapKey') push(entry.keyKind.value);
          push(entry.value);
        }
        break;
      case 'comprehensionExpr': {
        if (inComprehension) return { code: 'CEL_TOO_COMPLEX', message: `comprehensions (map, filter, all, exists...) may not nest, at ${where(expr.id)}` };
        const c = kind.value;
        const inner = new Set(bound);
        for (const v of [c.iterVar, c.iterVar2, c.accuVar]) if (v !== '') inner.add(v);
        push(c.iterRange);
        push(c.accuInit, inner, true);
        push(c.loopCondition, inner, true);
        push(c.loopStep, inner, true);
        push(c.result, inner, true);
        break;
      }
      default:
        break;
    }
  }
  return undefined;
}

/** A CEL value as JSON data; throws when it is larger than the budget or not representable. */
function toJson(value: CelValue, budget: { left: number }): unknown {
  budget.left -= 8;
  if (budget.left < 0) throw new Error(`CEL result exceeds ${Limits.maxOutputBytes} bytes`);
  switch (typeof value) {
    case 'string':
      budget.left -= value.length;
      if (budget.left < 0) throw new Error(`CEL result exceeds ${Limits.maxOutputBytes} bytes`);
      return value;
    case 'boolean':
    case 'number':
      return value;
    case 'bigint':
      return Number(value);
    default:
      break;
  }
  if (value === null) return null;
  if (isCelUint(value)) return Number(value.value);
  if (isCelList(value)) {
    const out: unknown[] = [];
    for (const item of value) out.push(toJson(item, budget));
    return out;
  }
  if (isCelMap(value)) {
    const entries: [string, unknown][] = [];
    for (const [k, v] of value) entries.push([typeof k === 'object' ? String(k.value) : String(k), toJson(v, budget)]);
    // fromEntries defines own properties: a `__proto__` key stays a plain key.
    return Object.fromEntries(entries);
  }
  throw new Error('CEL result is not JSON data (bytes, timestamps, durations and messages are not supported here)');
}
