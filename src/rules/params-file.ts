import { isMap, isScalar } from 'yaml';
import type { Node } from 'yaml';
import { canonicalJson, fnv1a64 } from '../shared/hash.js';
import type { ParsedScenario } from './scenario-parser.js';
import type { ObjectType } from './schema.js';
import { toParam } from './template.js';
import type { ParamsByField, Scenario } from './types.js';
import { show } from './yaml-reader.js';
import type { Reader, Source, YamlNode } from './yaml-reader.js';

/** The key of a parameter file that holds values for every actor; every other key is a profile field. */
const DEFAULTS = 'defaults';
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Values = Map<string, Record<string, unknown>>;

/**
 * A rules directory's parameter file (`params.yaml`):
 *
 * ```yaml
 * params:
 *   defaults:                       # for every actor, over the scenario's `with:`
 *     temp-high: { limit: 50 }
 *   site:                           # a profile field
 *     berlin-1:                     # its value
 *       temp-high: { limit: 30 }    # scenario: parameters
 * ```
 *
 * Checks every entry against the scenario's template (its parameters and their types) and, with a schema that
 * declares the profile, the profile field; then sets the scenarios' parameters: `defaults` over `params`, the
 * overrides in `paramsBy`. Only a parameter the template reads as `params.name` can be set: one written into the
 * rule as `${name}` is fixed when the rules compile.
 */
export function applyParamsFile(
  r: Reader,
  src: Source,
  node: YamlNode,
  scenarios: readonly ParsedScenario[],
  profile: ObjectType | undefined,
): void {
  const top = r.fields(src, node, 'parameter file', ['params']);
  const root = top?.get('params')?.value ?? null;
  if (!top) return;
  if (!isMap(root)) {
    r.problem(src, root ?? node, `params: expected a mapping of "${DEFAULTS}" and profile fields`);
    return;
  }
  const byId = new Map(scenarios.map((s) => [s.scenario.id, s]));
  const before = r.problems.length;
  let defaults: Values = new Map();
  const byField: Array<{ field: string; values: Map<string, Values> }> = [];
  for (const pair of root.items) {
    const key = r.resolve(src, pair.key);
    const name = isScalar(key) ? key.value : undefined;
    const value = r.resolve(src, pair.value);
    if (name === DEFAULTS) {
      defaults = readValues(r, src, value, `params.${DEFAULTS}`, byId);
      continue;
    }
    if (typeof name !== 'string' || !FIELD_NAME.test(name)) {
      r.problem(src, key ?? root, `params: "${String(name)}" is not a profile field name`);
      continue;
    }
    const known = profile?.fields;
    if (known !== undefined && !known.has(name)) {
      const fields = [...known.keys()].join(', ') || 'none';
      r.problem(src, key ?? root, `params.${name}: the schema's profile has no field "${name}" (fields: ${fields})`);
      continue;
    }
    byField.push({ field: name, values: readField(r, src, value, name, byId) });
  }
  if (r.problems.length > before) return;
  for (const s of scenarios) setParams(s.scenario, defaults.get(s.scenario.id), byField);
}

/** `params.FIELD`: each value of the profile field, with the parameters of the scenarios for it. */
function readField(
  r: Reader,
  src: Source,
  node: YamlNode,
  field: string,
  byId: ReadonlyMap<string, ParsedScenario>,
): Map<string, Values> {
  const out = new Map<string, Values>();
  if (!isMap(node)) {
    r.problem(src, node, `params.${field}: expected a mapping of ${field} values to scenarios' parameters`);
    return out;
  }
  for (const pair of node.items) {
    const key = r.resolve(src, pair.key);
    const raw = isScalar(key) ? key.value : undefined;
    if (typeof raw !== 'string' && typeof raw !== 'number') {
      r.problem(src, key ?? node, `params.${field}: a value of ${field} must be text or a number, not ${show(key)}`);
      continue;
    }
    out.set(String(raw), readValues(r, src, r.resolve(src, pair.value), `params.${field}.${raw}`, byId));
  }
  return out;
}

/** `scenario: {param: value}` entries, each checked against the scenario's template. */
function readValues(
  r: Reader,
  src: Source,
  node: YamlNode,
  where: string,
  byId: ReadonlyMap<string, ParsedScenario>,
): Values {
  const out: Values = new Map();
  if (!isMap(node)) {
    r.problem(src, node, `${where}: expected a mapping of scenario ids to parameters`);
    return out;
  }
  for (const pair of node.items) {
    const key = r.resolve(src, pair.key);
    const id = isScalar(key) ? String(key.value) : '';
    const parsed = byId.get(id);
    if (parsed === undefined) {
      const ids = [...byId.keys()].filter((k) => byId.get(k)?.template).join(', ') || 'none';
      r.problem(src, key ?? node, `${where}: no scenario "${id}" (scenarios with a template: ${ids})`);
      continue;
    }
    const values = readParams(r, src, r.resolve(src, pair.value), `${where}.${id}`, parsed, key ?? node);
    if (values) out.set(id, values);
  }
  return out;
}

function readParams(
  r: Reader,
  src: Source,
  node: YamlNode,
  where: string,
  parsed: ParsedScenario,
  at: Node,
): Record<string, unknown> | undefined {
  const tpl = parsed.template;
  if (tpl === undefined) {
    r.problem(src, at, `${where}: scenario ${parsed.scenario.id} uses no template; only template parameters are set here`);
    return undefined;
  }
  if (!isMap(node)) {
    r.problem(src, node, `${where}: expected a mapping of template ${tpl.name}'s parameters to values`);
    return undefined;
  }
  const out: Record<string, unknown> = {};
  for (const pair of node.items) {
    const key = r.resolve(src, pair.key);
    const name = isScalar(key) ? String(key.value) : '';
    const spec = tpl.params.get(name);
    if (spec === undefined) {
      const known = [...tpl.params.keys()].join(', ');
      r.problem(src, key ?? node, `${where}: template ${tpl.name} has no parameter "${name}" (its parameters: ${known})`);
      continue;
    }
    if (tpl.substituted.has(name)) {
      r.problem(
        src,
        key ?? node,
        `${where}.${name}: template ${tpl.name} writes \${${name}} into the rule, fixed when the rules compile; ` +
          `set it in the scenario's "with:"`,
        { hint: `only parameters the template reads as params.${name} can be set in the parameter file` },
      );
      continue;
    }
    const valueNode = r.resolve(src, pair.value);
    const conv = toParam(spec.type, isScalar(valueNode) ? valueNode.value : undefined);
    if (!conv.ok) {
      r.problem(src, valueNode ?? key ?? node, `${where}.${name}: expected ${conv.expected}, not ${show(valueNode)}`);
      continue;
    }
    out[name] = conv.param.value;
  }
  return out;
}

/** The scenario's parameters with the file's defaults, and its overrides by profile field; a new fingerprint. */
function setParams(
  sc: Scenario,
  defaults: Record<string, unknown> | undefined,
  byField: ReadonlyArray<{ field: string; values: ReadonlyMap<string, Values> }>,
): void {
  if (defaults !== undefined) sc.params = Object.freeze({ ...sc.params, ...defaults });
  const paramsBy: ParamsByField[] = [];
  for (const { field, values } of byField) {
    const mine = new Map<string, { overrides: Record<string, unknown>; params: Record<string, unknown> }>();
    for (const [value, entries] of values) {
      const overrides = entries.get(sc.id);
      if (overrides === undefined) continue;
      mine.set(value, {
        overrides: Object.freeze(overrides),
        params: Object.freeze({ ...sc.params, ...overrides }),
      });
    }
    if (mine.size > 0) paramsBy.push({ field, values: mine });
  }
  if (paramsBy.length > 0) sc.paramsBy = paramsBy;
  if (defaults === undefined && paramsBy.length === 0) return;
  const by = paramsBy.map((p) => [p.field, [...p.values].map(([v, o]) => [v, o.overrides])]);
  sc.fingerprint = fnv1a64(canonicalJson({ was: sc.fingerprint, params: sc.params, by }));
}
