import { Environment } from '@marcbachmann/cel-js';
import type { ASTNode, ParseResult } from '@marcbachmann/cel-js';
import type { EvalResult, Expression } from '../shared/index.js';

/** Longest expression source accepted; a rule condition is a line or two, not a program. */
export const MAX_EXPRESSION_CHARS = 4096;
/**
 * Comprehension macros (`all`, `exists`, `map`, …) may not nest: each level multiplies the work by the
 * size of a list a device sends, and two levels over an 8 KB payload already cost seconds.
 */
const MAX_COMPREHENSION_NESTING = 1;

const LIMITS = {
  maxAstNodes: 1000,
  maxDepth: 32,
  maxListElements: 256,
  maxMapEntries: 256,
  maxCallArguments: 16,
} as const;

/** The variables a rule expression may use, besides aggregate names. */
export const RULE_VARIABLES = ['data', 'profile', 'actor', 'params', 'last'] as const;

const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

export interface CompileOptions {
  /**
   * The variables the expression may reference. When given, any other name is a compile error (a typo
   * in a rule is caught when it loads); when omitted, unknown names are accepted and fail at evaluation.
   */
  variables?: readonly string[];
}

export type CompileResult = { ok: true; expression: Expression } | { ok: false; message: string };

/**
 * JSON numbers arrive as doubles and CBOR integers as bigints, so `data.temp + 1` would be an int/double
 * mix that standard CEL refuses; these overloads let arithmetic follow the comparisons, which CEL already
 * defines across int and double.
 */
function withMixedArithmetic(env: Environment): Environment {
  const ops: Record<string, (a: number, b: number) => number> = {
    '+': (a, b) => a + b,
    '-': (a, b) => a - b,
    '*': (a, b) => a * b,
    '/': (a, b) => a / b,
  };
  for (const [op, fn] of Object.entries(ops)) {
    env.registerOperator(`int ${op} double: double`, (a: bigint, b: number) => fn(Number(a), b));
    env.registerOperator(`double ${op} int: double`, (a: number, b: bigint) => fn(a, Number(b)));
  }
  return env;
}

let baseEnv: Environment | undefined;
let lenientEnv: Environment | undefined;
const strictEnvs = new Map<string, Environment>();

function base(): Environment {
  baseEnv ??= withMixedArithmetic(new Environment({ homogeneousAggregateLiterals: false, limits: LIMITS }));
  return baseEnv;
}

function envFor(variables: readonly string[] | undefined): Environment {
  if (variables === undefined) {
    lenientEnv ??= base().clone({ unlistedVariablesAreDyn: true });
    return lenientEnv;
  }
  const key = [...variables].sort().join(',');
  let env = strictEnvs.get(key);
  if (!env) {
    env = base().clone();
    for (const name of new Set(variables)) env.registerVariable(name, 'dyn');
    strictEnvs.set(key, env);
  }
  return env;
}

/** The first line of a cel-js message (the rest is a source excerpt with a caret), and where in the source. */
export function celProblem(err: unknown): { summary: string; at?: number } {
  if (!(err instanceof Error)) return { summary: String(err) };
  const summary = (err as { summary?: unknown }).summary;
  const head = typeof summary === 'string' ? summary : (err.message.split('\n')[0] ?? err.message);
  const range = (err as { range?: { start: number } }).range;
  return range ? { summary: head, at: range.start } : { summary: head };
}

/** As {@link celProblem}, with the column in the message. */
function describe(err: unknown, source: string): string {
  const { summary, at } = celProblem(err);
  if (at !== undefined && source.includes('\n') === false && source.length > 0)
    return `${summary} (column ${at + 1})`;
  return summary;
}

/**
 * A fresh environment with the operators and limits rule expressions evaluate with, for a type checker to
 * declare its variables and types in (rules/typing.ts).
 */
export function checkingEnvironment(): Environment {
  return base().clone();
}

function comprehensionNesting(node: ASTNode): number {
  let deepest = 0;
  const visit = (value: unknown, depth: number): void => {
    if (Array.isArray(value)) {
      for (const v of value) visit(v, depth);
      return;
    }
    if (value === null || typeof value !== 'object' || !('op' in value) || !('args' in value)) return;
    const n = value as ASTNode;
    let d = depth;
    if (n.op === 'rcall' && COMPREHENSIONS.has(n.args[0])) {
      d = depth + 1;
      deepest = Math.max(deepest, d);
    }
    visit(n.args, d);
  };
  visit(node, 0);
  return deepest;
}

/**
 * Converts CEL results into plain data that JSON and CBOR carry: CEL integers are bigints, maps may be
 * `Map`s, and timestamps and durations are objects.
 */
function toPlain(value: unknown): unknown {
  switch (typeof value) {
    case 'bigint':
      return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
        ? Number(value)
        : value.toString();
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'undefined':
      return null;
    case 'object': {
      if (value === null) return null;
      if (Array.isArray(value)) return value.map(toPlain);
      if (value instanceof Map) {
        const out: Record<string, unknown> = {};
        for (const [k, v] of value) out[String(k)] = toPlain(v);
        return out;
      }
      if (value instanceof Set) return [...value].map(toPlain);
      if (value instanceof Date) return value.toISOString();
      if (value instanceof Uint8Array) return Array.from(value);
      const proto = Object.getPrototypeOf(value) as unknown;
      // Library objects (durations, optionals, types) have a readable toString of their own.
      if (proto !== Object.prototype && proto !== null) return (value as { toString(): string }).toString();
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = toPlain(v);
      return out;
    }
    case 'function':
    case 'symbol':
      return null;
  }
}

class CelExpression implements Expression {
  constructor(
    readonly source: string,
    private readonly program: ParseResult,
  ) {}

  evaluate(vars: Readonly<Record<string, unknown>>): EvalResult {
    // A failed evaluation (a missing field) is routine and cel-js reports it by throwing: without a
    // stack trace to capture, that costs a fraction as much. Nothing else runs while it is lowered.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return { ok: true, value: toPlain(this.program(vars)) };
    } catch (err) {
      return { ok: false, error: describe(err, this.source) };
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
  }
}

/**
 * Compiles a CEL expression once, when its rule loads. Bounded: source length, AST size and depth,
 * and comprehension nesting are limited so that no rule can run away.
 */
export function compileExpression(source: string, opts: CompileOptions = {}): CompileResult {
  const r = compileTyped(source, opts);
  return r.ok ? { ok: true, expression: r.expression } : { ok: false, message: r.message };
}

/** As {@link compileExpression}, also giving the static type cel-js infers (`bool`, `int`, `dyn`, …). */
export function compileTyped(
  source: string,
  opts: CompileOptions = {},
):
  | { ok: true; expression: Expression; type: string }
  | { ok: false; message: string; summary?: string; at?: number } {
  if (typeof source !== 'string' || source.trim() === '') return { ok: false, message: 'empty expression' };
  if (source.length > MAX_EXPRESSION_CHARS)
    return { ok: false, message: `expression is longer than ${MAX_EXPRESSION_CHARS} characters` };
  const env = envFor(opts.variables);
  let program: ParseResult;
  try {
    program = env.parse(source);
  } catch (err) {
    return { ok: false, message: describe(err, source), ...celProblem(err) };
  }
  const checked = program.check();
  if (!checked.valid)
    return { ok: false, message: describe(checked.error, source), ...celProblem(checked.error) };
  const nesting = comprehensionNesting(program.ast);
  if (nesting > MAX_COMPREHENSION_NESTING)
    return {
      ok: false,
      message: `comprehensions (all, exists, map, filter) nested ${nesting} deep; at most ${MAX_COMPREHENSION_NESTING} allowed`,
    };
  return { ok: true, expression: new CelExpression(source, program), type: checked.type ?? 'dyn' };
}
