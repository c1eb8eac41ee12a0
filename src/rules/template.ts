import { isMap, isScalar, isSeq } from 'yaml';
import type { Node } from 'yaml';
import { ruleDurationMs, show } from './yaml-reader.js';
import type { Field, ParamValue, Reader, Source, YamlNode } from './yaml-reader.js';

const PARAM_TYPES = ['string', 'number', 'integer', 'boolean', 'duration'] as const;
export type ParamType = (typeof PARAM_TYPES)[number];

export interface ParamSpec {
  type: ParamType;
  default?: ParamValue;
}

/** A parsed template file (`template: name`): typed parameters and the scenario parts it provides. */
export interface Template {
  name: string;
  src: Source;
  line: number;
  params: ReadonlyMap<string, ParamSpec>;
  /** The parameters written into the body as `${name}`: fixed when the rules compile, unlike `params.name`. */
  substituted: ReadonlySet<string>;
  /** `when`, and optionally `then`, `priority`, `category`, `cooldown`, `description`. */
  body: ReadonlyMap<string, Field>;
}

const TEMPLATE_KEYS = [
  'template',
  'description',
  'params',
  'when',
  'then',
  'priority',
  'category',
  'cooldown',
];
const PARAM_KEYS = ['type', 'default', 'description'];
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PARAM_REF = /\$\{([^}]*)\}/g;

/** Converts a raw value to a parameter of `type`; a message saying what was expected when it does not fit. */
export function toParam(
  type: ParamType,
  raw: unknown,
): { ok: true; param: ParamValue } | { ok: false; expected: string } {
  switch (type) {
    case 'string':
      return typeof raw === 'string'
        ? { ok: true, param: { value: raw, text: raw } }
        : { ok: false, expected: 'a string' };
    case 'number':
      return typeof raw === 'number' && Number.isFinite(raw)
        ? { ok: true, param: { value: raw, text: String(raw) } }
        : { ok: false, expected: 'a number' };
    case 'integer':
      return typeof raw === 'number' && Number.isInteger(raw)
        ? { ok: true, param: { value: raw, text: String(raw) } }
        : { ok: false, expected: 'a whole number' };
    case 'boolean':
      return typeof raw === 'boolean'
        ? { ok: true, param: { value: raw, text: String(raw) } }
        : { ok: false, expected: 'true or false' };
    case 'duration': {
      const d = ruleDurationMs(raw, false);
      return d.ok && d.ms > 0
        ? { ok: true, param: { value: d.ms, text: String(raw) } }
        : { ok: false, expected: 'a duration with its unit, such as 30s, 5m or 1h' };
    }
  }
}

function collectRefs(r: Reader, src: Source, node: YamlNode, out: Array<{ name: string; node: Node }>): void {
  if (node === null) return;
  if (isScalar(node)) {
    if (typeof node.value === 'string')
      for (const m of node.value.matchAll(PARAM_REF)) out.push({ name: (m[1] ?? '').trim(), node });
    return;
  }
  if (isMap(node)) {
    for (const pair of node.items) collectRefs(r, src, r.resolve(src, pair.value), out);
    return;
  }
  if (isSeq(node)) for (const item of node.items) collectRefs(r, src, r.resolve(src, item), out);
}

/** Reads a template file's mapping; undefined (with problems reported) when it is unusable. */
export function readTemplate(r: Reader, src: Source, node: YamlNode): Template | undefined {
  const fields = r.fields(src, node, 'template', TEMPLATE_KEYS);
  if (!fields) return undefined;
  const nameField = fields.get('template');
  const name = nameField ? r.string(src, nameField.value, 'template', 'threshold') : undefined;
  let ok = name !== undefined;
  if (name !== undefined && !PARAM_NAME.test(name.replaceAll('-', '_'))) {
    r.problem(src, nameField?.value, `template: name "${name}" may use only letters, digits, - and _`);
    ok = false;
  }
  if (!fields.has('when')) {
    r.problem(src, node, `template ${name ?? ''}: "when" is required`);
    ok = false;
  }

  const params = new Map<string, ParamSpec>();
  const paramsField = fields.get('params');
  if (paramsField && paramsField.value !== null) {
    if (!isMap(paramsField.value)) {
      r.problem(src, paramsField.value, 'params: expected a mapping of name to { type, default }');
      ok = false;
    } else {
      for (const pair of paramsField.value.items) {
        const key = r.resolve(src, pair.key);
        const pname = isScalar(key) ? key.value : undefined;
        if (typeof pname !== 'string' || !PARAM_NAME.test(pname)) {
          r.problem(src, key, `params: a parameter name must be an identifier, not ${show(key)}`);
          ok = false;
          continue;
        }
        const spec = readParamSpec(r, src, pname, r.resolve(src, pair.value));
        if (spec) params.set(pname, spec);
        else ok = false;
      }
    }
  }

  const body = new Map<string, Field>();
  for (const [key, field] of fields) if (key !== 'template' && key !== 'params') body.set(key, field);

  const refs: Array<{ name: string; node: Node }> = [];
  for (const field of body.values()) collectRefs(r, src, field.value, refs);
  for (const ref of refs) {
    if (!params.has(ref.name)) {
      r.problem(src, ref.node, `template ${name ?? ''}: \${${ref.name}} is not one of its params`);
      ok = false;
    }
  }
  if (!ok || name === undefined) return undefined;
  const substituted = new Set(refs.map((ref) => ref.name));
  return { name, src, line: r.lineOf(src, nameField?.key ?? node), params, substituted, body };
}

function readParamSpec(r: Reader, src: Source, pname: string, node: YamlNode): ParamSpec | undefined {
  const f = r.fields(src, node, `params.${pname}`, PARAM_KEYS);
  if (!f) return undefined;
  const typeField = f.get('type');
  if (!typeField) {
    r.problem(src, node, `params.${pname}: "type" is required (one of ${PARAM_TYPES.join(', ')})`);
    return undefined;
  }
  const type = isScalar(typeField.value) ? typeField.value.value : undefined;
  if (typeof type !== 'string' || !(PARAM_TYPES as readonly string[]).includes(type)) {
    r.problem(
      src,
      typeField.value,
      `params.${pname}.type: expected one of ${PARAM_TYPES.join(', ')}, not ${show(typeField.value)}`,
    );
    return undefined;
  }
  const spec: ParamSpec = { type: type as ParamType };
  const def = f.get('default');
  if (def) {
    const raw = isScalar(def.value) ? def.value.value : undefined;
    const conv = toParam(spec.type, raw);
    if (!conv.ok) {
      r.problem(src, def.value, `params.${pname}.default: expected ${conv.expected}, not ${show(def.value)}`);
      return undefined;
    }
    spec.default = conv.param;
  }
  return spec;
}

/**
 * The parameter values a scenario passes in `with:`, checked against the template's declared types;
 * reports missing, unknown and mistyped parameters in the scenario's file.
 */
export function bindParams(
  r: Reader,
  tpl: Template,
  src: Source,
  useNode: Node,
  withField: Field | undefined,
): Map<string, ParamValue> | undefined {
  const given = new Map<string, { node: YamlNode; key: Node }>();
  let ok = true;
  if (withField && withField.value !== null) {
    if (!isMap(withField.value)) {
      r.problem(
        src,
        withField.value,
        `with: expected a mapping of parameter values for template ${tpl.name}`,
      );
      return undefined;
    }
    for (const pair of withField.value.items) {
      const key = r.resolve(src, pair.key);
      const pname = isScalar(key) ? key.value : undefined;
      if (typeof pname !== 'string' || key === null) {
        r.problem(src, key ?? withField.value, 'with: parameter names must be strings');
        ok = false;
        continue;
      }
      if (!tpl.params.has(pname)) {
        const known = [...tpl.params.keys()].join(', ');
        r.problem(src, key, `template ${tpl.name} has no parameter "${pname}" (its parameters: ${known})`);
        ok = false;
        continue;
      }
      given.set(pname, { node: r.resolve(src, pair.value), key });
    }
  }
  const out = new Map<string, ParamValue>();
  for (const [pname, spec] of tpl.params) {
    const g = given.get(pname);
    if (g === undefined) {
      if (spec.default === undefined) {
        r.problem(
          src,
          withField?.key ?? useNode,
          `template ${tpl.name}: missing parameter "${pname}" (${spec.type})`,
        );
        ok = false;
      } else out.set(pname, spec.default);
      continue;
    }
    const raw = isScalar(g.node) ? g.node.value : undefined;
    const conv = toParam(spec.type, raw);
    if (!conv.ok) {
      r.problem(
        src,
        g.node ?? g.key,
        `template ${tpl.name}: parameter "${pname}" must be ${conv.expected}, not ${show(g.node)}`,
      );
      ok = false;
      continue;
    }
    out.set(pname, conv.param);
  }
  return ok ? out : undefined;
}
