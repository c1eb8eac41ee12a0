import { isMap, isScalar, isSeq } from 'yaml';
import { show } from './yaml-reader.js';
import type { Reader, Source, YamlNode } from './yaml-reader.js';

/**
 * The inputs a rules directory declares (`schema:` in a file of its own, schema.yaml by convention): the fields
 * of each event type's data and of the profile, so that every CEL expression of the rules is type-checked
 * against them.
 */
export interface RuleSchema {
  file: string;
  events: ReadonlyMap<string, ObjectType>;
  /** Absent: the schema says nothing of profiles, and `profile` is not checked. */
  profile?: ObjectType;
}

export type FieldType =
  | { kind: 'string' | 'number' | 'boolean' | 'any' }
  | { kind: 'list'; of: FieldType }
  | ObjectType;

/** An object with the fields given; without `fields`, a map of any keys. */
export interface ObjectType {
  kind: 'object';
  fields?: ReadonlyMap<string, FieldType>;
}

const SCHEMA_KEYS = ['events', 'profile'];
const SCALARS: Record<string, FieldType> = {
  string: { kind: 'string' },
  number: { kind: 'number' },
  // Checked as a number: a JSON integer arrives as a double, and CEL compares and adds the two alike.
  integer: { kind: 'number' },
  boolean: { kind: 'boolean' },
  any: { kind: 'any' },
  list: { kind: 'list', of: { kind: 'any' } },
  map: { kind: 'object' },
  object: { kind: 'object' },
};
const SHORTHAND = `${Object.keys(SCALARS).join(', ')}, list<type> or a mapping of fields`;
/** The JSON Schema type names, and what each is checked as. */
const JSON_TYPES: Record<string, FieldType> = {
  string: { kind: 'string' },
  number: { kind: 'number' },
  integer: { kind: 'number' },
  boolean: { kind: 'boolean' },
  object: { kind: 'object' },
  array: { kind: 'list', of: { kind: 'any' } },
};

/** Reads a schema file's mapping (`schema: { events, profile }`); undefined (problems reported) when unusable. */
export function readSchema(r: Reader, src: Source, node: YamlNode): RuleSchema | undefined {
  const top = r.fields(src, node, 'schema file', ['schema']);
  const body = top?.get('schema');
  if (!body) return undefined;
  const before = r.problems.length;
  const f = r.fields(src, body.value, 'schema', SCHEMA_KEYS);
  if (!f) return undefined;
  const events = new Map<string, ObjectType>();
  const eventsNode = f.get('events')?.value ?? null;
  if (f.has('events') && !isMap(eventsNode)) {
    r.problem(src, eventsNode, `schema.events: expected a mapping of event type to its fields, not ${show(eventsNode)}`);
  } else if (isMap(eventsNode)) {
    for (const pair of eventsNode.items) {
      const key = r.resolve(src, pair.key);
      const name = isScalar(key) ? key.value : undefined;
      if (typeof name !== 'string' || name === '') {
        r.problem(src, key ?? eventsNode, 'schema.events: event types must be strings');
        continue;
      }
      const type = readEntry(r, src, r.resolve(src, pair.value), `schema.events.${name}`);
      if (type) events.set(name, type);
    }
  }
  const profileField = f.get('profile');
  const profile = profileField ? readEntry(r, src, profileField.value, 'schema.profile') : undefined;
  if (r.problems.length > before) return undefined;
  return profile ? { file: src.file, events, profile } : { file: src.file, events };
}

/** An event type's data or the profile: fields in shorthand, nothing (no fields), or a JSON Schema object. */
function readEntry(r: Reader, src: Source, node: YamlNode, where: string): ObjectType | undefined {
  if (node === null || (isScalar(node) && node.value === null)) return { kind: 'object', fields: new Map() };
  const type = isJsonSchema(r, src, node) ? readJsonSchema(r, src, node, where) : readShorthand(r, src, node, where);
  if (type === undefined) return undefined;
  if (type.kind === 'object') return type;
  r.problem(src, node, `${where}: expected the fields, a mapping of name to type`);
  return undefined;
}

/** A mapping written as JSON Schema: `type: object` with `properties`. */
function isJsonSchema(r: Reader, src: Source, node: YamlNode): boolean {
  if (!isMap(node)) return false;
  const keys = new Map(node.items.map((p) => [isScalar(p.key) ? p.key.value : undefined, p.value]));
  const type = r.resolve(src, keys.get('type'));
  return keys.has('properties') && isScalar(type) && type.value === 'object';
}

function readShorthand(r: Reader, src: Source, node: YamlNode, where: string): FieldType | undefined {
  if (isScalar(node) && typeof node.value === 'string') {
    const name = node.value.trim();
    const list = /^list\s*<\s*(\w+)\s*>$/.exec(name);
    const of = list ? SCALARS[list[1] ?? ''] : undefined;
    if (of) return { kind: 'list', of };
    const scalar = SCALARS[name];
    if (scalar) return scalar;
  }
  if (isMap(node)) {
    const fields = new Map<string, FieldType>();
    let ok = true;
    for (const pair of node.items) {
      const key = r.resolve(src, pair.key);
      const name = isScalar(key) ? key.value : undefined;
      if (typeof name !== 'string' || name === '') {
        r.problem(src, key ?? node, `${where}: field names must be strings`);
        ok = false;
        continue;
      }
      const type = readShorthand(r, src, r.resolve(src, pair.value), `${where}.${name}`);
      if (type) fields.set(name, type);
      else ok = false;
    }
    return ok ? { kind: 'object', fields } : undefined;
  }
  r.problem(src, node, `${where}: ${show(node)} is not a type`, { hint: `a type is one of ${SHORTHAND}` });
  return undefined;
}

function readJsonSchema(r: Reader, src: Source, node: YamlNode, where: string): FieldType | undefined {
  if (!isMap(node)) {
    r.problem(src, node, `${where}: expected a JSON Schema, such as { type: number }`);
    return undefined;
  }
  const get = (key: string): YamlNode => {
    const pair = node.items.find((p) => isScalar(p.key) && p.key.value === key);
    return pair ? r.resolve(src, pair.value) : null;
  };
  const typeNode = get('type');
  // A list of types (["number", "null"]): one type besides null is that type; more are anything.
  const names = isSeq(typeNode)
    ? typeNode.items.map((i) => (isScalar(i) ? i.value : undefined)).filter((t) => t !== 'null')
    : [isScalar(typeNode) ? typeNode.value : 'any'];
  if (names.length !== 1) return { kind: 'any' };
  const name = names[0];
  if (name === 'any') return { kind: 'any' };
  const base = typeof name === 'string' ? JSON_TYPES[name] : undefined;
  if (!base) {
    r.problem(src, typeNode, `${where}.type: ${show(typeNode)} is not a JSON Schema type`, {
      hint: `one of ${Object.keys(JSON_TYPES).join(', ')}`,
    });
    return undefined;
  }
  if (base.kind === 'list') {
    const items = get('items');
    const of = isMap(items) ? readJsonSchema(r, src, items, `${where}.items`) : { kind: 'any' as const };
    return of ? { kind: 'list', of } : undefined;
  }
  if (base.kind !== 'object') return base;
  const props = get('properties');
  if (!isMap(props)) return { kind: 'object' };
  const fields = new Map<string, FieldType>();
  let ok = true;
  for (const pair of props.items) {
    const key = r.resolve(src, pair.key);
    const fname = isScalar(key) ? String(key.value) : '';
    const t = readJsonSchema(r, src, r.resolve(src, pair.value), `${where}.properties.${fname}`);
    if (t) fields.set(fname, t);
    else ok = false;
  }
  return ok ? { kind: 'object', fields } : undefined;
}
