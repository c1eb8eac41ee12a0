import type { Expression } from '../shared/index.js';

/**
 * A condition answered without the CEL interpreter, or undefined when this input is not one it can answer
 * (the interpreter then decides, errors included).
 */
type FastCondition = (vars: Readonly<Record<string, unknown>>) => boolean | undefined;
type Operand = (vars: Readonly<Record<string, unknown>>) => unknown;

const IDENT = '[A-Za-z_][A-Za-z0-9_]*';
const OPERAND = `(?:(data|profile|params)\\.(${IDENT})|data\\[params\\.(${IDENT})\\]|(-?\\d+(?:\\.\\d+)?)|(${IDENT}))`;
const COMPARISON = new RegExp(`^\\s*${OPERAND}\\s*(>=|<=|==|!=|>|<)\\s*${OPERAND}\\s*$`);

type Comparison = (a: number, b: number) => boolean;

// CEL compares two doubles, and an int with a double, with JavaScript's operators; `==` of two doubles is
// `===` (NaN equals nothing) and `!=` is its negation (cel-js, lib/overloads.js).
const COMPARE: Readonly<Record<string, Comparison>> = {
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '==': (a, b) => a === b,
  '!=': (a, b) => a !== b,
};

const compiled = new WeakMap<Expression, FastCondition | null>();

/**
 * The fast path of a rule condition of the commonest shape, `A op B`, where each side is `data.x`,
 * `profile.x`, `params.x`, `data[params.x]` or a number, and `op` a comparison: the shipped rules' conditions
 * and the threshold template's are all of it. It answers only when both sides are present numbers, which CEL
 * compares exactly as JavaScript does; a missing field, another type or any other shape goes to the
 * interpreter, so that results and errors stay CEL's. Scenarios made from one template share the source, and
 * a gateway with many of them evaluates each per event: this is where their cost went.
 */
export function fastCondition(expr: Expression): FastCondition | undefined {
  let fast = compiled.get(expr);
  if (fast === undefined) {
    fast = compile(expr.source) ?? null;
    compiled.set(expr, fast);
  }
  return fast ?? undefined;
}

interface Parsed {
  left: OperandSpec;
  op: string;
  right: OperandSpec;
}

/** One side of a comparison: a variable's field, a data field named by a parameter, a number, or a variable. */
type OperandSpec =
  | { kind: 'field'; variable: string; field: string }
  | { kind: 'data-by-param'; param: string }
  | { kind: 'number'; value: number }
  | { kind: 'variable'; name: string };

function parse(source: string): Parsed | undefined {
  const m = COMPARISON.exec(source);
  if (!m) return undefined;
  const left = spec(m[1], m[2], m[3], m[4], m[5]);
  const right = spec(m[7], m[8], m[9], m[10], m[11]);
  const op = m[6];
  if (!left || !right || op === undefined || !(op in COMPARE)) return undefined;
  return { left, op, right };
}

/**
 * A comparison, or comparisons joined by `&&` (`avgTemp > 70 && readings >= 5`, an aggregate's `having`): CEL's
 * `&&` of two booleans is JavaScript's, and the conjunction answers only when every comparison does.
 */
function compile(source: string): FastCondition | undefined {
  if (!source.includes('&&')) return compileComparison(source);
  const parts: FastCondition[] = [];
  for (const part of source.split('&&')) {
    const c = compileComparison(part);
    if (c === undefined) return undefined;
    parts.push(c);
  }
  return (vars) => {
    let all = true;
    for (let i = 0; i < parts.length; i++) {
      const r = (parts[i] as FastCondition)(vars);
      if (r === undefined) return undefined;
      all &&= r;
    }
    return all;
  };
}

function compileComparison(source: string): FastCondition | undefined {
  const parsed = parse(source);
  if (!parsed) return undefined;
  const left = operand(parsed.left);
  const right = operand(parsed.right);
  const compare = COMPARE[parsed.op] as Comparison;
  return (vars) => {
    const a = left(vars);
    if (typeof a !== 'number') return undefined;
    const b = right(vars);
    if (typeof b !== 'number') return undefined;
    return compare(a, b);
  };
}

/** A condition that compares one field of `data` with a number fixed for the scenario. */
export interface DataThreshold {
  /** The field of `data` it reads. */
  field: string;
  op: ComparisonOp;
  constant: number;
  /** The constant is on the left: `80 < data.temp`. */
  flipped: boolean;
}

export type ComparisonOp = '>' | '>=' | '<' | '<=' | '==' | '!=';

/**
 * The condition as a {@link DataThreshold} when it is one for a scenario with these `params` (`data.temp > 80`,
 * `data[params.metric] > params.limit`): many scenarios of one template then cost a comparison each per event.
 */
export function dataThreshold(
  expr: Expression,
  params: Readonly<Record<string, unknown>>,
): DataThreshold | undefined {
  const parsed = parse(expr.source);
  if (!parsed) return undefined;
  const op = parsed.op as ComparisonOp;
  const leftField = dataField(parsed.left, params);
  const rightField = dataField(parsed.right, params);
  if (leftField !== undefined && rightField === undefined) {
    const constant = constantOf(parsed.right, params);
    return constant === undefined ? undefined : { field: leftField, op, constant, flipped: false };
  }
  if (rightField !== undefined && leftField === undefined) {
    const constant = constantOf(parsed.left, params);
    return constant === undefined ? undefined : { field: rightField, op, constant, flipped: true };
  }
  return undefined;
}

function dataField(o: OperandSpec, params: Readonly<Record<string, unknown>>): string | undefined {
  if (o.kind === 'field') return o.variable === 'data' ? o.field : undefined;
  if (o.kind === 'data-by-param') {
    const key = own(params, o.param);
    return typeof key === 'string' ? key : undefined;
  }
  return undefined;
}

function constantOf(o: OperandSpec, params: Readonly<Record<string, unknown>>): number | undefined {
  if (o.kind === 'number') return o.value;
  if (o.kind === 'field' && o.variable === 'params') {
    const value = own(params, o.field);
    return typeof value === 'number' ? value : undefined;
  }
  return undefined;
}

function spec(
  variable: string | undefined,
  field: string | undefined,
  paramKey: string | undefined,
  literal: string | undefined,
  name: string | undefined,
): OperandSpec | undefined {
  if (variable !== undefined && field !== undefined) return { kind: 'field', variable, field };
  if (name !== undefined) return { kind: 'variable', name };
  if (paramKey !== undefined) return { kind: 'data-by-param', param: paramKey };
  if (literal !== undefined) {
    const value = Number(literal);
    // An int literal past 2^53 is a bigint in CEL that no double equals: the interpreter compares those.
    if (!literal.includes('.') && !Number.isSafeInteger(value)) return undefined;
    return { kind: 'number', value };
  }
  return undefined;
}

function operand(o: OperandSpec): Operand {
  switch (o.kind) {
    case 'field':
      return (vars) => own(vars[o.variable], o.field);
    case 'data-by-param':
      return (vars) => {
        const key = own(vars['params'], o.param);
        return typeof key === 'string' ? own(vars['data'], key) : undefined;
      };
    case 'number':
      return () => o.value;
    case 'variable':
      // An aggregate's name in `having` (`avgTemp`); `true`, `null` and the like are no number here either.
      return (vars) => own(vars, o.name);
  }
}

const DATA_FIELD = new RegExp(`^\\s*data\\.(${IDENT})\\s*$`);
const dataFields = new WeakMap<Expression, string | null>();

/**
 * The value of an expression `data.x` (an aggregate's argument, `avg(data.temp)`) read without the interpreter,
 * when it is a finite number, which CEL gives as it is; undefined for anything else and any other shape (the
 * interpreter then evaluates it: it gives null for NaN).
 */
export function fastDataNumber(expr: Expression, data: unknown): number | undefined {
  let field = dataFields.get(expr);
  if (field === undefined) {
    field = DATA_FIELD.exec(expr.source)?.[1] ?? null;
    dataFields.set(expr, field);
  }
  if (field === null) return undefined;
  const v = own(data, field);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * A map entry as CEL sees it: an own property of a plain object (decoded JSON and CBOR maps, profiles,
 * params). Lists, byte strings and other objects are not answered here.
 */
export function own(container: unknown, key: string): unknown {
  if (typeof container !== 'object' || container === null) return undefined;
  const proto: unknown = Object.getPrototypeOf(container);
  if (proto !== Object.prototype && proto !== null) return undefined;
  return Object.hasOwn(container, key) ? (container as Record<string, unknown>)[key] : undefined;
}
