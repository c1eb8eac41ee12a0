import type { Environment } from '@marcbachmann/cel-js';
import { celProblem, checkingEnvironment } from './cel.js';
import type { FieldType, ObjectType, RuleSchema } from './schema.js';
import type { ExpressionTyping, TypeCheck } from './yaml-reader.js';

/** Event types the gateway produces itself: the broker's, when a device connects or disconnects. */
const BUILT_IN: ReadonlyArray<[string, ObjectType]> = [
  ['connected', { kind: 'object', fields: new Map() }],
  ['disconnected', { kind: 'object', fields: new Map([['reason', { kind: 'string' }]]) }],
];


/**
 * Type-checks rule expressions against a rules directory's schema, with cel-js' own checker: `data` is the
 * data of the event types the expression looks at, `profile` the declared profile, `last` the match's last
 * event. Checking only: expressions still evaluate as compiled (rules/cel.ts), so a checked rule runs as an
 * unchecked one would.
 */
export class RuleTyping implements ExpressionTyping {
  private readonly events = new Map<string, ObjectType>();
  private readonly envs = new Map<string, Environment>();

  /** `emitted`: the event types scenarios emit, with the names of the data fields each gives. */
  constructor(
    readonly schema: RuleSchema,
    emitted: ReadonlyMap<string, readonly string[]>,
  ) {
    for (const [name, type] of BUILT_IN) this.events.set(name, type);
    for (const [name, fields] of emitted) {
      const any: FieldType = { kind: 'any' };
      this.events.set(name, { kind: 'object', fields: new Map(fields.map((f) => [f, any])) });
    }
    for (const [name, type] of schema.events) this.events.set(name, type);
  }

  /** Whether a device, the cloud (as the schema declares), the broker or a scenario produces `event`. */
  knows(event: string): boolean {
    return this.events.has(event);
  }

  /** The known event type closest to a misspelt one. */
  closestEvent(event: string): string | undefined {
    return closest(event, [...this.events.keys()]);
  }

  /**
   * Checks `source` with `variables` in scope, `data` being of `events` (undefined: any event); `declared` gives
   * the types of variables a scenario binds itself (its named windows).
   */
  check(
    source: string,
    variables: readonly string[],
    events: readonly string[] | undefined,
    declared?: ReadonlyMap<string, FieldType>,
  ): TypeCheck {
    const data = events === undefined ? undefined : this.dataOf(events);
    const env = this.envFor(variables, events, data, declared);
    let result: ReturnType<Environment['check']>;
    try {
      result = env.check(source);
    } catch (err) {
      return { ok: false, message: celProblem(err).summary };
    }
    if (result.valid) return { ok: true, type: result.type ?? 'dyn' };
    return this.explain(source, celProblem(result.error), events, data, declared);
  }

  /** The data of any of `events`: the fields of all of them (a field typed differently by two is anything). */
  private dataOf(events: readonly string[]): ObjectType | undefined {
    const fields = new Map<string, FieldType>();
    for (const event of events) {
      const type = this.events.get(event);
      // An unknown type is reported where it is named; a map of any keys accepts any field.
      if (type?.fields === undefined) return undefined;
      for (const [name, t] of type.fields) {
        const seen = fields.get(name);
        fields.set(name, seen && JSON.stringify(seen) !== JSON.stringify(t) ? { kind: 'any' } : t);
      }
    }
    return { kind: 'object', fields };
  }

  private envFor(
    variables: readonly string[],
    events: readonly string[] | undefined,
    data?: ObjectType,
    declared?: ReadonlyMap<string, FieldType>,
  ): Environment {
    const own = declared ? JSON.stringify([...declared].map(([n, t]) => [n, typeKey(t)])) : '';
    const key = `${events?.join(',') ?? '*'}|${[...variables].sort().join(',')}|${own}`;
    let env = this.envs.get(key);
    if (env) return env;
    env = checkingEnvironment();
    const types = new TypeNames(env);
    const dataType = data ? types.of(data, 'Data') : 'dyn';
    const profileType = this.schema.profile ? types.of(this.schema.profile, 'Profile') : 'dyn';
    env.registerType('Last', {
      fields: { actor: 'string', type: 'string', at: 'double', source: 'string', data: dataType },
    });
    const typeOf: Record<string, string> = {
      data: dataType,
      profile: profileType,
      actor: 'string',
      group: 'string',
      last: 'Last',
      params: 'dyn',
    };
    for (const [name, type] of declared ?? []) typeOf[name] = types.of(type, `Own_${name}`);
    for (const name of new Set(variables)) env.registerVariable(name, typeOf[name] ?? 'dyn');
    this.envs.set(key, env);
    return env;
  }

  /** A checker's message made about the rule: which field of what, and what would be right. */
  private explain(
    source: string,
    problem: { summary: string; at?: number },
    events: readonly string[] | undefined,
    data: ObjectType | undefined,
    declared?: ReadonlyMap<string, FieldType>,
  ): TypeCheck {
    const { summary, at } = problem;
    const where = at !== undefined ? { at } : {};
    const key = /^No such key: (.+)$/.exec(summary)?.[1];
    if (key !== undefined && at !== undefined) {
      const path = /([A-Za-z_][\w.]*?)\s*\.\??\s*$/.exec(source.slice(0, at))?.[1] ?? '';
      const own = declared?.get(path);
      const known =
        path === 'profile'
          ? { what: 'the profile', fields: this.schema.profile?.fields }
          : path === 'data' || path === 'last.data'
            ? { what: `the data of ${events?.join(', ') ?? 'the event'}`, fields: data?.fields }
            : own?.kind === 'object'
              ? { what: `the window ${path}`, fields: own.fields }
              : undefined;
      if (known) {
        const names = [...(known.fields?.keys() ?? [])];
        const near = closest(key, names);
        const hint = near
          ? `did you mean ${path}.${near}?`
          : names.length > 0
            ? `${known.what} has ${names.join(', ')}`
            : `${known.what} has no fields`;
        const from = own ? '' : ` (${this.schema.file})`;
        const message = `${path}.${key}: ${known.what} has no field "${key}"${from}`;
        return { ok: false, message, ...where, hint };
      }
      return { ok: false, message: `no field "${key}"`, ...where };
    }
    if (summary.startsWith('no such overload')) {
      const literal = /"(-?\d+(?:\.\d+)?)"/.exec(source)?.[1];
      const hint =
        literal !== undefined
          ? `"${literal}" is a string; write the number ${literal} to compare numbers`
          : 'CEL does not convert between types: convert with double(…), int(…) or string(…), or compare like with like';
      return { ok: false, message: `types do not match: ${summary}`, ...where, hint };
    }
    return { ok: false, message: summary, ...where };
  }
}

/** A field type as a string, to tell environments apart. */
function typeKey(type: FieldType): unknown {
  if (type.kind === 'list') return ['list', typeKey(type.of)];
  if (type.kind === 'object') return ['object', type.fields ? [...type.fields].map(([n, t]) => [n, typeKey(t)]) : null];
  return type.kind;
}

let untyped: RuleTyping | undefined;

/**
 * A checker for rules without a schema: `data` and `profile` are anything, and only the variables a scenario
 * declares itself (its named windows) are checked.
 */
export function untypedChecker(): RuleTyping {
  untyped ??= new RuleTyping({ file: '', events: new Map() }, new Map());
  return untyped;
}

/** Registers the object types of the schema in one environment, under names of their own. */
class TypeNames {
  private readonly used = new Set<string>();
  constructor(private readonly env: Environment) {}

  /** The CEL type of a field type, registering the object types it needs. */
  of(type: FieldType, name: string): string {
    switch (type.kind) {
      case 'string':
        return 'string';
      case 'number':
        return 'double';
      case 'boolean':
        return 'bool';
      case 'any':
        return 'dyn';
      case 'list':
        return `list<${this.of(type.of, `${name}_item`)}>`;
      case 'object': {
        if (type.fields === undefined) return 'map<string, dyn>';
        let unique = name.replace(/\W/g, '_');
        for (let i = 2; this.used.has(unique); i++) unique = `${name.replace(/\W/g, '_')}${i}`;
        this.used.add(unique);
        const fields: Record<string, string> = {};
        for (const [field, t] of type.fields) fields[field] = this.of(t, `${unique}_${field}`);
        this.env.registerType(unique, { fields });
        return unique;
      }
    }
  }
}

/** The candidate closest to `name` by edit distance, when it is close enough to be a slip. */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Edit distance counting a swap of two neighbours as one edit (`nmae` is one from `name`). */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    const prev = rows[i - 1] ?? [];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      row[j] = d;
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}
