import { isMap, isScalar, isSeq } from 'yaml';
import type { Destination, Expression } from '../shared/index.js';
import { canonicalJson, fnv1a64 } from '../shared/hash.js';
import { compileTyped, RULE_VARIABLES } from './cel.js';
import { bindParams } from './template.js';
import type { Template } from './template.js';
import type {
  AggregateFn,
  AggregatePlan,
  EmitPlan,
  FieldPlan,
  Scenario,
  StepPlan,
  WhenPlan,
} from './types.js';
import { show } from './yaml-reader.js';
import type { Field, Reader, Source, YamlNode } from './yaml-reader.js';

const SCENARIO_KEYS = [
  'id',
  'description',
  'priority',
  'category',
  'cooldown',
  'when',
  'then',
  'use',
  'with',
];
const WHEN_KEYS = [
  'event',
  'any',
  'all',
  'absent',
  'sequence',
  'for',
  'where',
  'by',
  'count',
  'within',
  'distinct',
  'window',
  'aggregate',
  'having',
];
const KIND_KEYS = ['event', 'any', 'all', 'absent', 'sequence'] as const;
type KindKey = (typeof KIND_KEYS)[number];
const COMPANIONS: Record<KindKey, readonly string[]> = {
  event: ['where', 'by', 'count', 'within', 'distinct', 'window', 'aggregate', 'having'],
  any: ['where', 'by', 'count', 'within', 'distinct', 'window', 'aggregate', 'having'],
  all: ['where', 'by', 'within'],
  absent: ['for', 'by'],
  sequence: ['by'],
};
const THEN_KEYS = ['action', 'to', 'payload', 'emit'];
const EMIT_KEYS = ['event', 'data'];
const STEP_KEYS = ['event', 'absent', 'where', 'within'];
const DESTINATIONS: readonly Destination[] = ['upstream', 'device'];
const AGGREGATE_FNS: readonly AggregateFn[] = ['count', 'sum', 'avg', 'min', 'max', 'first', 'last'];

/** Longest period a rule may name: timers and windows beyond a year are a mistake, not a scenario. */
export const MAX_PERIOD_MS = 366 * 86_400_000;
const MAX_COUNT = 100_000;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Event and action names become MQTT topic levels: no separators or wildcards, no spaces. */
const NAME_PATTERN = /^[^\s/+#]+$/;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED = new Set<string>([...RULE_VARIABLES, 'group', 'true', 'false', 'null', 'in', 'as', 'has']);

/** Variables of a `where`, `by`, `distinct` or aggregate argument: the event being looked at. */
const EVENT_VARS = ['data', 'profile', 'actor', 'params'];
/** Variables of `having`, payload and emitted data: also the match's last event and its group. */
const THEN_VARS = [...EVENT_VARS, 'last', 'group'];

export interface ParsedScenario {
  scenario: Scenario;
  /** Where `then.emit` is written, to locate an emit cycle. */
  emitAt?: { file: string; line: number };
}

interface WhenResult {
  plan: WhenPlan;
  by?: Expression;
  /** Names bound by `aggregate`, visible to `having` and `then`. */
  aggregates: readonly string[];
}

/** Parses one scenario (a mapping in a rule file); reports its problems and returns undefined when any. */
export function parseScenario(
  r: Reader,
  src: Source,
  node: YamlNode,
  templates: ReadonlyMap<string, Template>,
): ParsedScenario | undefined {
  const before = r.problems.length;
  const own = r.fields(src, node, 'scenario', SCENARIO_KEYS);
  if (!own) return undefined;
  const idField = own.get('id');
  const id = idField ? r.string(src, idField.value, 'id', 'device-offline') : undefined;
  if (!idField) r.problem(src, node, 'scenario: "id" is required');
  else if (id !== undefined && !ID_PATTERN.test(id))
    r.problem(src, idField.value, `id: "${id}" may use only letters, digits, ".", "-" and "_"`);
  const label = id ?? 'scenario';

  // A scenario using a template takes the template's parts, each read in the template's file, and
  // overrides them with its own.
  const fields = new Map<string, Field>(own);
  const use = own.get('use');
  let params: Record<string, unknown> = {};
  if (use) {
    const name = r.string(src, use.value, 'use', 'threshold');
    const tpl = name !== undefined ? templates.get(name) : undefined;
    if (name !== undefined && tpl === undefined) {
      const known = [...templates.keys()].sort().join(', ') || 'none';
      r.problem(src, use.value, `use: unknown template "${name}" (templates: ${known})`);
    }
    if (own.has('when'))
      r.problem(
        src,
        own.get('when')?.key,
        `when: scenario ${label} uses template ${name ?? ''}, which gives "when"`,
      );
    if (tpl) {
      const bound = bindParams(r, tpl, src, use.key, own.get('with'));
      if (bound) {
        const tplSrc: Source = {
          ...tpl.src,
          params: bound,
          usedBy: `template ${tpl.name}, used by ${label} in ${src.file}:${r.lineOf(src, use.key)}`,
        };
        for (const [key, f] of tpl.body) if (!own.has(key)) fields.set(key, { ...f, src: tplSrc });
        for (const [pname, p] of bound) params[pname] = p.value;
        params = Object.freeze(params);
      }
    }
  } else if (own.has('with')) {
    r.problem(src, own.get('with')?.key, 'with: only a scenario that uses a template takes parameters');
  }

  const description =
    optional(fields.get('description'), (f) => r.string(f.src, f.value, 'description')) ?? '';
  const priority =
    optional(fields.get('priority'), (f) => r.integer(f.src, f.value, 'priority', 0, 100)) ?? 50;
  const category =
    optional(fields.get('category'), (f) => r.string(f.src, f.value, 'category', 'support')) ?? 'general';
  const cooldownMs = optional(fields.get('cooldown'), (f) =>
    r.duration(f.src, f.value, 'cooldown', MAX_PERIOD_MS),
  );

  const whenField = fields.get('when');
  if (!whenField && !use) r.problem(src, node, `scenario ${label}: "when" is required`);
  const when = whenField ? parseWhen(r, whenField) : undefined;

  const thenField = fields.get('then');
  if (!thenField) r.problem(src, node, `scenario ${label}: "then" is required`);
  // Read `then` even when `when` has problems, so that all of them are reported at once.
  const aggregates = when?.aggregates ?? (whenField ? aggregateNames(r, whenField) : []);
  const then = thenField ? parseThen(r, thenField, aggregates) : undefined;

  if (r.problems.length > before || id === undefined || when === undefined || then === undefined)
    return undefined;

  const sources = [
    ...then.payload.map((f) => f.expr.source),
    ...(then.emit?.data ?? []).map((f) => f.expr.source),
  ];
  if (when.plan.kind === 'aggregate' && when.plan.having) sources.push(when.plan.having.source);
  const scenario: Scenario = {
    id,
    description,
    priority,
    category,
    file: src.file,
    line: r.lineOf(src, node),
    to: then.to,
    payload: then.payload,
    when: when.plan,
    params,
    listens: listensTo(when.plan),
    horizonMs: horizonOf(when.plan),
    keepsData: sources.some(usesPastData),
    fingerprint: fnv1a64(canonicalJson(describe({ when: when.plan, by: when.by, params }))),
  };
  if (then.action !== undefined) scenario.action = then.action;
  if (then.emit) scenario.emit = then.emit;
  if (cooldownMs !== undefined) scenario.cooldownMs = cooldownMs;
  if (when.by) scenario.by = when.by;
  const parsed: ParsedScenario = { scenario };
  if (then.emitAt) parsed.emitAt = then.emitAt;
  return parsed;
}

/** The names an `aggregate` mapping binds, read without validating it. */
function aggregateNames(r: Reader, whenField: Field): string[] {
  if (!isMap(whenField.value)) return [];
  const pair = whenField.value.items.find((p) => isScalar(p.key) && p.key.value === 'aggregate');
  const agg = pair ? r.resolve(whenField.src, pair.value) : null;
  if (!isMap(agg)) return [];
  return agg.items.map((p) => (isScalar(p.key) ? String(p.key.value) : '')).filter((n) => IDENTIFIER.test(n));
}

function optional<T>(field: Field | undefined, read: (f: Field) => T | undefined): T | undefined {
  return field ? read(field) : undefined;
}

/** Replaces compiled expressions with their source, so the plan can be hashed. */
function describe(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(describe);
  if (value !== null && typeof value === 'object') {
    const rec = value as Record<string, unknown>;
    if (typeof rec.source === 'string' && typeof rec.evaluate === 'function') return { cel: rec.source };
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(rec)) out[k] = describe(v);
    return out;
  }
  return value;
}

/** Whether an expression reads the data of an event that is no longer the current one. */
function usesPastData(source: string): boolean {
  return /\bdata\b/.test(source) || /\blast\b(?!\s*\.\s*(?:at|type|actor|source)\b)/.test(source);
}

function listensTo(plan: WhenPlan): string[] {
  switch (plan.kind) {
    case 'trigger':
    case 'count':
    case 'aggregate':
    case 'all':
      return [...plan.events];
    case 'silence':
      return plan.any ? [] : [plan.absent];
    case 'sequence':
      return [...new Set(plan.steps.map((s) => s.event))];
  }
}

function horizonOf(plan: WhenPlan): number {
  switch (plan.kind) {
    case 'trigger':
      return 0;
    case 'count':
      return plan.withinMs ?? 0;
    case 'aggregate':
      return plan.windowMs;
    case 'silence':
      return plan.forMs;
    case 'all':
      return plan.withinMs;
    case 'sequence':
      return plan.steps.reduce((sum, s) => sum + (s.withinMs ?? 0), 0);
  }
}

function compile(
  r: Reader,
  src: Source,
  node: YamlNode,
  where: string,
  variables: readonly string[],
  condition: boolean,
): Expression | undefined {
  const source = r.celSource(src, node, where);
  if (source === undefined) return undefined;
  const c = compileTyped(source, { variables });
  if (!c.ok) {
    r.problem(src, node, `${where}: ${c.message}`);
    return undefined;
  }
  if (condition && c.type !== 'bool' && c.type !== 'dyn') {
    r.problem(src, node, `${where}: must be a condition (true or false), but gives ${c.type}`);
    return undefined;
  }
  return c.expression;
}

function eventName(r: Reader, src: Source, node: YamlNode, where: string): string | undefined {
  const name = r.string(src, node, where, 'telemetry');
  if (name === undefined) return undefined;
  if (!NAME_PATTERN.test(name)) {
    r.problem(src, node, `${where}: "${name}" is not an event type (no spaces, "/", "+" or "#")`);
    return undefined;
  }
  if (name === 'any') {
    r.problem(src, node, `${where}: "any" is only meaningful in "absent: any"`);
    return undefined;
  }
  return name;
}

function eventList(r: Reader, src: Source, node: YamlNode, where: string, min: number): string[] | undefined {
  if (!isSeq(node)) {
    r.problem(
      src,
      node,
      `${where}: expected a list of event types, such as [account-created, contract-created]`,
    );
    return undefined;
  }
  const out: string[] = [];
  let ok = true;
  for (const item of node.items) {
    const itemNode = r.resolve(src, item);
    const name = eventName(r, src, itemNode, where);
    if (name === undefined) ok = false;
    else if (out.includes(name)) {
      r.problem(src, itemNode, `${where}: "${name}" is listed twice`);
      ok = false;
    } else out.push(name);
  }
  if (ok && out.length < min) {
    r.problem(src, node, `${where}: list at least ${min} event types`);
    return undefined;
  }
  return ok ? out : undefined;
}

function parseWhen(r: Reader, whenField: Field): WhenResult | undefined {
  const src = whenField.src;
  const f = r.fields(src, whenField.value, 'when', WHEN_KEYS);
  if (!f) return undefined;
  const kinds = KIND_KEYS.filter((k) => f.has(k));
  if (kinds.length !== 1) {
    const at = kinds.length > 1 ? f.get(kinds[1] ?? 'event')?.key : whenField.key;
    r.problem(src, at, `when: give exactly one of ${KIND_KEYS.join(', ')}`);
    return undefined;
  }
  const kind = kinds[0] as KindKey;
  let ok = true;
  for (const [key, field] of f) {
    if (key !== kind && !COMPANIONS[kind].includes(key)) {
      r.problem(src, field.key, `when: "${key}" does not go with "${kind}"`);
      ok = false;
    }
  }
  const value = (key: string): YamlNode => f.get(key)?.value ?? null;
  const fieldSrc = (key: string): Source => f.get(key)?.src ?? src;

  let by: Expression | undefined;
  if (f.has('by')) {
    by = compile(r, fieldSrc('by'), value('by'), 'by', EVENT_VARS, false);
    if (!by) ok = false;
  }
  let where: Expression | undefined;
  if (f.has('where')) {
    where = compile(r, fieldSrc('where'), value('where'), 'where', EVENT_VARS, true);
    if (!where) ok = false;
  }
  const withMs = (key: string): number | undefined =>
    f.has(key) ? r.duration(fieldSrc(key), value(key), key, MAX_PERIOD_MS) : undefined;
  const required = (key: string, what: string): boolean => {
    if (f.has(key)) return true;
    r.problem(src, whenField.key, `when: "${kind}" needs "${key}" (${what})`);
    return false;
  };

  let plan: WhenPlan | undefined;
  let aggregates: string[] = [];
  switch (kind) {
    case 'event':
    case 'any': {
      const events =
        kind === 'event'
          ? ((n) => (n === undefined ? undefined : [n]))(eventName(r, src, value('event'), 'event'))
          : eventList(r, src, value('any'), 'any', 1);
      if (!events) return undefined;
      const windowed = f.has('window') || f.has('aggregate') || f.has('having');
      const counted = f.has('count') || f.has('within') || f.has('distinct');
      if (windowed && counted) {
        r.problem(
          src,
          whenField.key,
          'when: use either count/within/distinct or window/aggregate/having, not both',
        );
        return undefined;
      }
      if (windowed) {
        if (
          !required('window', 'how far back to aggregate, such as 10m') ||
          !required('aggregate', 'named functions')
        )
          return undefined;
        const windowMs = withMs('window');
        const aggs = parseAggregates(r, f.get('aggregate') as Field);
        if (windowMs === undefined || !aggs) return undefined;
        aggregates = aggs.map((a) => a.name);
        let having: Expression | undefined;
        if (f.has('having')) {
          having = compile(
            r,
            fieldSrc('having'),
            value('having'),
            'having',
            [...THEN_VARS, ...aggregates],
            true,
          );
          if (!having) return undefined;
        }
        plan = { kind: 'aggregate', events, windowMs, aggregates: aggs };
        if (where) plan.where = where;
        if (having) plan.having = having;
      } else if (counted) {
        if (!required('count', 'how many events')) return undefined;
        const count = r.integer(fieldSrc('count'), value('count'), 'count', 1, MAX_COUNT);
        const withinMs = withMs('within');
        let distinct: Expression | undefined;
        if (f.has('distinct'))
          distinct = compile(r, fieldSrc('distinct'), value('distinct'), 'distinct', EVENT_VARS, false);
        if (
          count === undefined ||
          (f.has('within') && withinMs === undefined) ||
          (f.has('distinct') && !distinct)
        )
          return undefined;
        plan = { kind: 'count', events, count };
        if (where) plan.where = where;
        if (withinMs !== undefined) plan.withinMs = withinMs;
        if (distinct) plan.distinct = distinct;
      } else {
        plan = where ? { kind: 'trigger', events, where } : { kind: 'trigger', events };
      }
      break;
    }
    case 'all': {
      const events = eventList(r, src, value('all'), 'all', 2);
      if (!required('within', 'how close together the events must come, such as 1m')) return undefined;
      const withinMs = withMs('within');
      if (!events || withinMs === undefined) return undefined;
      plan = where ? { kind: 'all', events, where, withinMs } : { kind: 'all', events, withinMs };
      break;
    }
    case 'absent': {
      const raw = r.string(src, value('absent'), 'absent', 'any');
      const isAny = raw === 'any';
      const absent = isAny ? 'any' : eventName(r, src, value('absent'), 'absent');
      if (!required('for', 'how long the silence lasts, such as 5m')) return undefined;
      const forMs = withMs('for');
      if (absent === undefined || forMs === undefined) return undefined;
      plan = { kind: 'silence', absent, any: isAny, forMs };
      break;
    }
    case 'sequence': {
      const steps = parseSteps(r, f.get('sequence') as Field);
      if (!steps) return undefined;
      plan = { kind: 'sequence', steps };
      break;
    }
  }
  if (!ok || !plan) return undefined;
  return by ? { plan, by, aggregates } : { plan, aggregates };
}

function parseAggregates(r: Reader, field: Field): AggregatePlan[] | undefined {
  const src = field.src;
  if (!isMap(field.value)) {
    r.problem(
      src,
      field.value,
      'aggregate: expected a mapping of name to function, such as avgTemp: avg(data.temp)',
    );
    return undefined;
  }
  const out: AggregatePlan[] = [];
  let ok = true;
  for (const pair of field.value.items) {
    const key = r.resolve(src, pair.key);
    const valueNode = r.resolve(src, pair.value);
    const name = isScalar(key) ? key.value : undefined;
    if (typeof name !== 'string' || !IDENTIFIER.test(name) || RESERVED.has(name)) {
      r.problem(
        src,
        key ?? field.value,
        `aggregate: ${show(key)} cannot name an aggregate (use an identifier that is not ${[...RESERVED].join(', ')})`,
      );
      ok = false;
      continue;
    }
    const text = r.string(src, valueNode, `aggregate.${name}`, 'avg(data.temp)');
    if (text === undefined) {
      ok = false;
      continue;
    }
    const m = /^\s*([a-z]+)\s*\(([\s\S]*)\)\s*$/.exec(text);
    const fn = m?.[1] as AggregateFn | undefined;
    if (!m || fn === undefined || !AGGREGATE_FNS.includes(fn)) {
      r.problem(
        src,
        valueNode,
        `aggregate.${name}: expected one of ${AGGREGATE_FNS.map((a) => `${a}(…)`).join(', ')}, not "${text}"`,
      );
      ok = false;
      continue;
    }
    const argSource = (m[2] ?? '').trim();
    if (fn === 'count') {
      if (argSource !== '') {
        r.problem(src, valueNode, `aggregate.${name}: count() takes no argument; filter with "where"`);
        ok = false;
      } else out.push({ name, fn });
      continue;
    }
    if (argSource === '') {
      r.problem(src, valueNode, `aggregate.${name}: ${fn}() needs an expression, such as ${fn}(data.temp)`);
      ok = false;
      continue;
    }
    const c = compileTyped(argSource, { variables: EVENT_VARS });
    if (!c.ok) {
      r.problem(src, valueNode, `aggregate.${name}: ${c.message}`);
      ok = false;
      continue;
    }
    out.push({ name, fn, arg: c.expression });
  }
  if (ok && out.length === 0) {
    r.problem(src, field.value, 'aggregate: name at least one function');
    return undefined;
  }
  return ok ? out : undefined;
}

function parseSteps(r: Reader, field: Field): StepPlan[] | undefined {
  const src = field.src;
  if (!isSeq(field.value) || field.value.items.length < 2) {
    r.problem(
      src,
      field.value,
      'sequence: expected a list of at least two steps, each { event } or { absent, within }',
    );
    return undefined;
  }
  const steps: StepPlan[] = [];
  let ok = true;
  field.value.items.forEach((item, i) => {
    const node = r.resolve(src, item);
    const where = `sequence[${i + 1}]`;
    const f = r.fields(src, node, where, STEP_KEYS);
    if (!f) {
      ok = false;
      return;
    }
    const isAbsent = f.has('absent');
    if (isAbsent === f.has('event')) {
      r.problem(src, node, `${where}: give either "event" or "absent"`);
      ok = false;
      return;
    }
    const event = eventName(
      r,
      src,
      f.get(isAbsent ? 'absent' : 'event')?.value ?? null,
      `${where}.${isAbsent ? 'absent' : 'event'}`,
    );
    const step: StepPlan = { kind: isAbsent ? 'absent' : 'event', event: event ?? '' };
    if (event === undefined) ok = false;
    const whereField = f.get('where');
    if (whereField) {
      const w = compile(r, src, whereField.value, `${where}.where`, EVENT_VARS, true);
      if (w) step.where = w;
      else ok = false;
    }
    const withinField = f.get('within');
    if (i === 0 && isAbsent) {
      r.problem(
        src,
        node,
        `${where}: a sequence cannot start with an absent step; use "absent" with "for" instead`,
      );
      ok = false;
    } else if (i === 0 && withinField) {
      r.problem(
        src,
        withinField.key,
        `${where}: the first step has no "within" (there is no step before it)`,
      );
      ok = false;
    } else if (isAbsent && !withinField) {
      r.problem(src, node, `${where}: an absent step needs "within" (its deadline after the step before)`);
      ok = false;
    }
    if (withinField && i > 0) {
      const ms = r.duration(src, withinField.value, `${where}.within`, MAX_PERIOD_MS);
      if (ms === undefined) ok = false;
      else step.withinMs = ms;
    }
    steps.push(step);
  });
  return ok ? steps : undefined;
}

interface ThenResult {
  action?: string;
  to: Destination[];
  payload: FieldPlan[];
  emit?: EmitPlan;
  emitAt?: { file: string; line: number };
}

function parseFields(
  r: Reader,
  src: Source,
  node: YamlNode,
  where: string,
  variables: readonly string[],
): FieldPlan[] | undefined {
  if (node === null || (isScalar(node) && node.value === null)) return [];
  if (!isMap(node)) {
    r.problem(src, node, `${where}: expected a mapping of name to CEL expression`);
    return undefined;
  }
  const out: FieldPlan[] = [];
  let ok = true;
  for (const pair of node.items) {
    const key = r.resolve(src, pair.key);
    const name = isScalar(key) ? key.value : undefined;
    if (typeof name !== 'string' || name === '') {
      r.problem(src, key ?? node, `${where}: field names must be strings`);
      ok = false;
      continue;
    }
    const expr = compile(r, src, r.resolve(src, pair.value), `${where}.${name}`, variables, false);
    if (expr) out.push({ name, expr });
    else ok = false;
  }
  return ok ? out : undefined;
}

function parseThen(r: Reader, thenField: Field, aggregates: readonly string[]): ThenResult | undefined {
  const src = thenField.src;
  const f = r.fields(src, thenField.value, 'then', THEN_KEYS);
  if (!f) return undefined;
  const variables = [...THEN_VARS, ...aggregates];
  let ok = true;
  const out: ThenResult = { to: [], payload: [] };

  const actionField = f.get('action');
  if (actionField) {
    const action = r.string(src, actionField.value, 'action', 'inspect-device');
    if (action !== undefined && !NAME_PATTERN.test(action)) {
      r.problem(
        src,
        actionField.value,
        `action: "${action}" cannot be a command name (no spaces, "/", "+" or "#")`,
      );
      ok = false;
    } else if (action === undefined) ok = false;
    else out.action = action;
  }
  const toField = f.get('to');
  if (toField) {
    if (!actionField) r.problem(src, toField.key, 'to: there is no action to send');
    const list = r.stringList(src, toField.value, 'to', '[upstream, device]');
    if (!list) ok = false;
    else
      for (const d of list) {
        if (!(DESTINATIONS as readonly string[]).includes(d)) {
          r.problem(src, toField.value, `to: "${d}" is not a destination (upstream, device)`);
          ok = false;
        } else if (!out.to.includes(d as Destination)) out.to.push(d as Destination);
      }
  } else if (actionField) out.to = ['upstream'];
  const payloadField = f.get('payload');
  if (payloadField) {
    if (!actionField) r.problem(src, payloadField.key, 'payload: there is no action to carry it');
    const payload = parseFields(r, src, payloadField.value, 'payload', variables);
    if (payload) out.payload = payload;
    else ok = false;
  }
  const emitField = f.get('emit');
  if (emitField) {
    out.emitAt = { file: src.file, line: r.lineOf(src, emitField.key) };
    const v = emitField.value;
    if (isMap(v)) {
      const ef = r.fields(src, v, 'emit', EMIT_KEYS);
      const event = ef?.get('event')
        ? eventName(r, src, ef.get('event')?.value ?? null, 'emit.event')
        : undefined;
      if (ef && !ef.has('event')) r.problem(src, v, 'emit: "event" is required');
      const data = ef?.get('data')
        ? parseFields(r, src, ef.get('data')?.value ?? null, 'emit.data', variables)
        : [];
      if (event === undefined || !data) ok = false;
      else out.emit = { event, data };
    } else {
      const event = eventName(r, src, v, 'emit');
      if (event === undefined) ok = false;
      else out.emit = { event, data: [] };
    }
  }
  if (!actionField && !emitField) {
    r.problem(src, thenField.key, 'then: give an "action", an "emit", or both');
    ok = false;
  }
  return ok ? out : undefined;
}
