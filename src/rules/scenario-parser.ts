import { isMap, isScalar, isSeq } from 'yaml';
import { kindSelectors, kindsIntroducedBy, scenarioKinds, whenKeysOf } from '../engine/kinds/index.js';
import type { ScenarioKind } from '../engine/kinds/index.js';
import type { Destination, Expression } from '../shared/index.js';
import { canonicalJson, fnv1a64 } from '../shared/hash.js';
import { bindParams } from './template.js';
import type { Template } from './template.js';
import { parseForward } from './forward-parser.js';
import type { EmitPlan, FieldPlan, ForwardPlan, KindPlan, Scenario } from './types.js';
import {
  compile,
  EVENT_VARS,
  eventName,
  MAX_PERIOD_MS,
  NAME_PATTERN,
  THEN_VARS,
  WhenFields,
} from './when-fields.js';
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
const THEN_KEYS = ['action', 'to', 'payload', 'emit', 'forward'];
const EMIT_KEYS = ['event', 'data', 'actor'];
const DESTINATIONS: readonly Destination[] = ['upstream', 'device'];
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface ParsedScenario {
  scenario: Scenario;
  /** Where `then.emit` is written, to locate an emit cycle. */
  emitAt?: { file: string; line: number };
  /** The template it uses, if any (a parameter file sets its parameters). */
  template?: Template;
}

interface WhenResult {
  plan: KindPlan;
  kind: ScenarioKind;
  by?: Expression;
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
  const { fields, params, template } = withTemplate(r, src, own, label, templates);
  const use = own.get('use');

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
  const names = whenField ? boundNames(r, whenField) : [];
  r.dataEvents =
    when && when.kind.hearsDevice?.(when.plan) !== true ? [...when.kind.listens(when.plan)] : undefined;
  const then = thenField ? parseThen(r, thenField, names) : undefined;
  r.dataEvents = undefined;

  if (r.problems.length > before || id === undefined || when === undefined || then === undefined)
    return undefined;

  const { plan, kind } = when;
  const sources = [
    ...then.payload.map((f) => f.expr.source),
    ...(then.emit?.data ?? []).map((f) => f.expr.source),
    ...(kind.firingExpressions?.(plan) ?? []).map((e) => e.source),
  ];
  const scenario: Scenario = {
    id,
    description,
    priority,
    category,
    file: src.file,
    line: r.lineOf(src, node),
    to: then.to,
    payload: then.payload,
    when: plan,
    params,
    listens: [...kind.listens(plan)],
    horizonMs: kind.horizonMs(plan),
    // Raw forwarding sends the data of the event that fired it.
    keepsData: sources.some(usesPastData) || then.forward?.of === 'raw',
    fingerprint: fnv1a64(canonicalJson(describe({ when: plan, by: when.by, params }))),
  };
  if (then.action !== undefined) scenario.action = then.action;
  if (then.emit) scenario.emit = then.emit;
  if (then.forward) scenario.forward = then.forward;
  if (cooldownMs !== undefined) scenario.cooldownMs = cooldownMs;
  if (when.by) scenario.by = when.by;
  const parsed: ParsedScenario = { scenario };
  if (then.emitAt) parsed.emitAt = then.emitAt;
  if (template) parsed.template = template;
  return parsed;
}

/**
 * A scenario's fields, taking a template's parts (each read in the template's file) where it uses one and
 * does not give them itself, and the template parameters it binds.
 */
function withTemplate(
  r: Reader,
  src: Source,
  own: ReadonlyMap<string, Field>,
  label: string,
  templates: ReadonlyMap<string, Template>,
): { fields: Map<string, Field>; params: Readonly<Record<string, unknown>>; template?: Template } {
  const fields = new Map<string, Field>(own);
  const use = own.get('use');
  let params: Record<string, unknown> = {};
  if (!use) {
    if (own.has('with'))
      r.problem(src, own.get('with')?.key, 'with: only a scenario that uses a template takes parameters');
    return { fields, params };
  }
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
  const bound = tpl ? bindParams(r, tpl, src, use.key, own.get('with')) : undefined;
  if (tpl && bound) {
    const tplSrc: Source = {
      ...tpl.src,
      params: bound,
      usedBy: `template ${tpl.name}, used by ${label} in ${src.file}:${r.lineOf(src, use.key)}`,
    };
    for (const [key, f] of tpl.body) if (!own.has(key)) fields.set(key, { ...f, src: tplSrc });
    for (const [pname, p] of bound) params[pname] = p.value;
    params = Object.freeze(params);
    return { fields, params, template: tpl };
  }
  return { fields, params };
}

/** The names a `when` binds for `having` and `then` (aggregates), read without validating it. */
function boundNames(r: Reader, whenField: Field): string[] {
  return scenarioKinds().flatMap((k) => k.boundNames?.(r, whenField) ?? []);
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

/**
 * A `when`: exactly one key introducing a kind (`event`, `absent`, …), the keys that go with it, and the
 * kind's own part, which the kind reads itself.
 */
function parseWhen(r: Reader, whenField: Field): WhenResult | undefined {
  const src = whenField.src;
  const f = r.fields(src, whenField.value, 'when', whenKeysOf());
  if (!f) return undefined;
  const selectors = kindSelectors();
  const given = selectors.filter((k) => f.has(k));
  if (given.length !== 1) {
    const at = given.length > 1 ? f.get(given[1] ?? '')?.key : whenField.key;
    r.problem(src, at, `when: give exactly one of ${selectors.join(', ')}`);
    return undefined;
  }
  const selector = given[0] as string;
  r.dataEvents = namedEvents(r, src, f.get(selector)?.value ?? null);
  const family = kindsIntroducedBy(selector);
  const goesWith = (key: string): boolean =>
    family.some((k) => k.syntax.keys.includes(key) || (k.syntax.shared as readonly string[]).includes(key));
  let ok = true;
  for (const [key, field] of f) {
    if (key !== selector && !goesWith(key)) {
      r.problem(src, field.key, `when: "${key}" does not go with "${selector}"`);
      ok = false;
    }
  }
  // The keys every kind shares are compiled here, whichever kind is meant.
  const shared = (key: string, condition: boolean): Expression | undefined => {
    const field = f.get(key);
    if (!field) return undefined;
    const expr = compile(r, field.src, field.value, key, EVENT_VARS, condition);
    if (!expr) ok = false;
    return expr;
  };
  const by = shared('by', false);
  const where = shared('where', true);

  // Of the kinds sharing the selector, the one whose own keys are given (or the one without keys).
  const meant = family.filter((k) => k.syntax.keys.some((key) => f.has(key)));
  const kind = meant[0] ?? family.find((k) => k.syntax.keys.length === 0) ?? family[0];
  if (kind === undefined) return undefined;
  const [a, b] = meant;
  const conflict =
    a && b ? `when: use either ${a.syntax.keys.join('/')} or ${b.syntax.keys.join('/')}, not both` : undefined;
  const w = new WhenFields(r, whenField, f, selector, where, conflict);
  const plan = kind.parse(w);
  if (!plan || !w.exclusive() || !ok) return undefined;
  return by ? { plan, kind, by } : { plan, kind };
}

interface ThenResult {
  action?: string;
  to: Destination[];
  payload: FieldPlan[];
  emit?: EmitPlan;
  emitAt?: { file: string; line: number };
  forward?: ForwardPlan;
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
      const actorField = ef?.get('actor');
      const actor = actorField
        ? compile(r, src, actorField.value, 'emit.actor', variables, false)
        : undefined;
      if (event === undefined || !data || (actorField && !actor)) ok = false;
      else out.emit = actor ? { event, data, actor } : { event, data };
    } else {
      const event = eventName(r, src, v, 'emit');
      if (event === undefined) ok = false;
      else out.emit = { event, data: [] };
    }
  }
  const forwardField = f.get('forward');
  if (forwardField) {
    const forward = parseForward(r, forwardField, aggregates);
    if (forward) out.forward = forward;
    else ok = false;
  }
  if (!actionField && !emitField && !forwardField) {
    r.problem(src, thenField.key, 'then: give an "action", an "emit", a "forward", or more than one');
    ok = false;
  }
  return ok ? out : undefined;
}

/**
 * The event types a `when` selector names, read as written (`event: a`, `all: [a, b]`, a sequence's steps), for
 * typing `data`; undefined for any event, or where a template parameter names them.
 */
function namedEvents(r: Reader, src: Source, node: YamlNode): string[] | undefined {
  const name = (n: unknown): string | undefined => {
    const v = r.resolve(src, n);
    return isScalar(v) && typeof v.value === 'string' && !v.value.includes('${') ? v.value : undefined;
  };
  if (isScalar(node)) {
    const one = name(node);
    return one === undefined || one === 'any' ? undefined : [one];
  }
  if (!isSeq(node)) return undefined;
  const out: string[] = [];
  for (const item of node.items) {
    const v = r.resolve(src, item);
    const step = isMap(v) ? (name(v.get('event', true)) ?? name(v.get('absent', true))) : name(v);
    if (step === undefined) return undefined;
    out.push(step);
  }
  return out;
}
