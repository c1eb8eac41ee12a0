import { isSeq } from 'yaml';
import type { Expression } from '../shared/index.js';
import { compileTyped, RULE_VARIABLES } from './cel.js';
import type { FieldType } from './schema.js';
import { untypedChecker } from './typing.js';
import type { Field, ProblemDetail, Reader, Source, YamlNode } from './yaml-reader.js';

// The parts of a rule that every scenario kind reads the same way. A leaf of rules/: the scenario kinds
// (engine/kinds) parse their own `when` with it, and the scenario parser dispatches to them.

/** Longest period a rule may name: timers and windows beyond a year are a mistake, not a scenario. */
export const MAX_PERIOD_MS = 366 * 86_400_000;
/** Event and action names become MQTT topic levels: no separators or wildcards, no spaces. */
export const NAME_PATTERN = /^[^\s/+#]+$/;
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Words a rule cannot bind a name to (an aggregate's): CEL's variables and keywords. */
export const RESERVED = new Set<string>([...RULE_VARIABLES, 'group', 'true', 'false', 'null', 'in', 'as', 'has']);

/** Variables of a `where`, `by`, `distinct` or aggregate argument: the event being looked at. */
export const EVENT_VARS: readonly string[] = ['data', 'profile', 'actor', 'params'];
/** Variables of `having`, payload and emitted data: also the match's last event and its group. */
export const THEN_VARS: readonly string[] = [...EVENT_VARS, 'last', 'group'];

/**
 * Compiles a CEL expression of a rule; reports its problem and returns undefined when it does not compile.
 * `declared` types variables the scenario binds itself: they are checked even where the rules have no schema.
 */
export function compile(
  r: Reader,
  src: Source,
  node: YamlNode,
  where: string,
  variables: readonly string[],
  condition: boolean,
  declared?: ReadonlyMap<string, FieldType>,
): Expression | undefined {
  const source = r.celSource(src, node, where);
  if (source === undefined) return undefined;
  const c = compileTyped(source, { variables });
  if (!c.ok) {
    const hint = source.includes('??') ? NO_COALESCING : undefined;
    r.problem(src, node, `${where}: ${c.summary ?? c.message}`, placed(src, node, source, c.at, hint));
    return undefined;
  }
  let type = c.type;
  // Without a schema, only what the scenario declares is checked: `data` of any event is anything.
  const typing = r.typing ?? (declared ? untypedChecker() : undefined);
  if (typing) {
    const t = typing.check(source, variables, r.typing ? r.dataEvents : undefined, declared);
    if (!t.ok) {
      r.problem(src, node, `${where}: ${t.message}`, placed(src, node, source, t.at, t.hint));
      return undefined;
    }
    type = t.type;
  }
  if (condition && type !== 'bool' && type !== 'dyn') {
    r.problem(src, node, `${where}: must be a condition (true or false), but gives ${type}`);
    return undefined;
  }
  return c.expression;
}

/** CEL has no null-coalescing operator; this is how a rule gives a default. */
const NO_COALESCING =
  'CEL has no "??"; give a default with has(): has(profile.name) ? profile.name : "customer"';

/**
 * Where in the file a problem at `at` characters into an expression is: inside the scalar when the file holds
 * the expression as written (plain or quoted on one line), else at the scalar.
 */
function placed(src: Source, node: YamlNode, source: string, at: number | undefined, hint?: string): ProblemDetail {
  const detail: ProblemDetail = hint !== undefined ? { hint } : {};
  const start = node?.range?.[0];
  if (at === undefined || start === undefined) return detail;
  const quoted = src.text[start] === '"' || src.text[start] === "'" ? 1 : 0;
  if (src.text.slice(start + quoted, start + quoted + source.length) === source) detail.at = quoted + at;
  return detail;
}

export function eventName(r: Reader, src: Source, node: YamlNode, where: string): string | undefined {
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
  // An event a scenario listens to must come from somewhere: a device or the cloud (the schema), the broker,
  // or another scenario's emit.
  if (r.typing && !where.startsWith('emit') && !r.typing.knows(name)) {
    const near = r.typing.closestEvent(name);
    r.problem(src, node, `${where}: no device or scenario produces "${name}"`, {
      hint: near
        ? `did you mean ${near}?`
        : `declare it in ${r.typing.schema.file} (schema.events), or emit it from a scenario`,
    });
    return undefined;
  }
  return name;
}

export function eventList(
  r: Reader,
  src: Source,
  node: YamlNode,
  where: string,
  min: number,
): string[] | undefined {
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

/**
 * A scenario's `when`, as its kind reads it: the key that introduced the kind (`event`, `absent`, …), the
 * other keys, and the `where` every kind shares, compiled already.
 */
export class WhenFields {
  private conflictReported = false;

  constructor(
    readonly r: Reader,
    /** The `when` key and its mapping. */
    readonly when: Field,
    private readonly fields: ReadonlyMap<string, Field>,
    /** The key that introduced the kind, such as `event`, `any` or `absent`. */
    readonly selector: string,
    readonly where: Expression | undefined,
    /** Set when keys of two kinds that share the selector were mixed. */
    private readonly conflict: string | undefined,
  ) {}

  /** The file of the `when` mapping (a template's file for a scenario that uses one). */
  get src(): Source {
    return this.when.src;
  }

  has(key: string): boolean {
    return this.fields.has(key);
  }

  field(key: string): Field | undefined {
    return this.fields.get(key);
  }

  value(key: string): YamlNode {
    return this.fields.get(key)?.value ?? null;
  }

  srcOf(key: string): Source {
    return this.fields.get(key)?.src ?? this.when.src;
  }

  /** A duration key (`within: 5m`), when given and valid. */
  durationMs(key: string): number | undefined {
    return this.has(key) ? this.r.duration(this.srcOf(key), this.value(key), key, MAX_PERIOD_MS) : undefined;
  }

  /** An event type key (`of: button-press`), when given and valid. */
  event(key: string): string | undefined {
    return this.has(key) ? eventName(this.r, this.srcOf(key), this.value(key), key) : undefined;
  }

  /** Reports a missing key the kind needs; `what` says what it is for. */
  required(key: string, what: string): boolean {
    if (this.has(key)) return true;
    this.r.problem(this.src, this.when.key, `when: "${this.selector}" needs "${key}" (${what})`);
    return false;
  }

  /** Compiles the CEL expression of a key; `declared` types variables the scenario binds itself. */
  compile(
    key: string,
    variables: readonly string[],
    condition: boolean,
    declared?: ReadonlyMap<string, FieldType>,
  ): Expression | undefined {
    return compile(this.r, this.srcOf(key), this.value(key), key, variables, condition, declared);
  }

  /**
   * Whether the keys given belong to one kind only: mixing the keys of two kinds that share the selector
   * (`count` and `window`) is reported, once.
   */
  exclusive(): boolean {
    if (this.conflict === undefined) return true;
    if (!this.conflictReported) this.r.problem(this.src, this.when.key, this.conflict);
    this.conflictReported = true;
    return false;
  }
}
