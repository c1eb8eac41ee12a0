import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, stringify } from 'yaml';
import type { Document, Node } from 'yaml';
import { RuleError } from '../shared/index.js';
import type { Expression, RuleProblem } from '../shared/index.js';
import { compileExpression } from './cel.js';
import { ruleDurationMs } from './yaml-reader.js';
import type { ExpressionTyping } from './yaml-reader.js';

/** How often one contact key may be reached, across all scenarios: one cap of the policy's `contact`. */
export interface ContactPolicy {
  /** Most actions sent to one contact key within `perMs`. */
  max: number;
  perMs: number;
  /** The categories capped; absent, every category but those in `except`. */
  categories?: readonly string[];
  /** Categories that are never capped; their actions do not count toward `max` either. */
  except: readonly string[];
  /**
   * Computes the contact key over `{ profile, actor }` (e.g. `profile.customer`, so that the devices of one
   * household share one cap). Without it, or when it yields no string or number, the key is the actor.
   */
  by?: Expression;
}

/**
 * While the actor (or, with `by`, anyone sharing its key: `profile.household`) has had a sent action of category
 * `active` within `forMs`, `suppress` categories are held back.
 */
export interface ExclusiveRule {
  active: string;
  forMs: number;
  suppress: readonly string[];
  by?: Expression;
}

/** `count` upstream actions per `perMs`; the uplink delays beyond it, it never suppresses. */
export interface RatePolicy {
  count: number;
  perMs: number;
}

/** The contact policy of a rules directory (`policy.yaml`). Absent parts impose no constraint. */
export interface Policy {
  /** The contact caps, each applied on its own; a candidate must pass all that cover its category. */
  contact: readonly ContactPolicy[];
  /** Default cooldown per scenario and actor (per group for grouped scenarios); a scenario may set its own. */
  cooldownMs?: number;
  exclusive: readonly ExclusiveRule[];
  rate?: RatePolicy;
  /** How long an action of a category may wait in the outbox before it is dropped instead of sent late. */
  ttlMs: ReadonlyMap<string, number>;
}

export type PolicyResult = { ok: true; policy: Policy } | { ok: false; problems: RuleProblem[] };

const POLICY_KEYS = ['contact', 'cooldown', 'exclusive', 'rate', 'ttl'] as const;
const CONTACT_KEYS = ['categories', 'except', 'max', 'per', 'by'] as const;
const EXCLUSIVE_KEYS = ['active', 'for', 'suppress', 'by'] as const;
/** What a `by:` key may refer to: a name outside these is a typo, caught when the policy loads. */
const KEY_VARIABLES = ['profile', 'actor'];
/** The static types a `by:` key may have (a field of a declared profile, or anything when undeclared). */
const KEY_TYPES = ['string', 'double', 'int', 'uint', 'dyn'];
const RATE_UNIT_MS: Readonly<Record<string, number>> = { s: 1_000, m: 60_000 };

type Value = Node | null;
type Field = { key: Node; value: Value };
type Fields<K extends string> = Partial<Record<K, Field>>;

/** Walks one parsed document and collects every problem, located by line. */
class Reader {
  readonly problems: RuleProblem[] = [];
  private readonly file: string;
  private readonly doc: Document;
  private readonly lines: LineCounter;
  private readonly typing: ExpressionTyping | undefined;

  constructor(file: string, doc: Document, lines: LineCounter, typing: ExpressionTyping | undefined) {
    this.file = file;
    this.doc = doc;
    this.lines = lines;
    this.typing = typing;
  }

  lineOf(node: Value, fallback?: Value): number {
    const range = node?.range ?? fallback?.range;
    return range ? this.lines.linePos(range[0]).line : 1;
  }

  problem(at: Value, message: string, fallback?: Value, hint?: string): void {
    const range = at?.range ?? fallback?.range;
    const pos = range ? this.lines.linePos(range[0]) : { line: 1, col: 1 };
    this.problems.push({ file: this.file, line: pos.line, col: pos.col, message, ...(hint ? { hint } : {}) });
  }

  /**
   * A `by:` key over `{ profile, actor }`. With a schema it is type-checked: an unknown profile field is an error,
   * and so is a key that can be neither a string nor a number.
   */
  keyExpression(node: Value, where: string, example: string): Expression | undefined {
    const source = isScalar(node) ? node.value : undefined;
    if (typeof source !== 'string' || source.trim() === '') {
      this.problem(node, `${where}: expected a CEL expression such as ${example}, not ${show(node)}`);
      return undefined;
    }
    const compiled = compileExpression(source, { variables: KEY_VARIABLES });
    if (!compiled.ok) {
      this.problem(node, `${where}: ${compiled.message}`);
      return undefined;
    }
    const checked = this.typing?.check(source, KEY_VARIABLES, undefined);
    if (checked && !checked.ok) {
      this.problem(node, `${where}: ${checked.message}`, undefined, checked.hint);
      return undefined;
    }
    if (checked?.ok && !KEY_TYPES.includes(checked.type)) {
      const hint = `a key is a string or a number, such as ${example}`;
      this.problem(node, `${where}: gives ${checked.type}, not a key`, undefined, hint);
      return undefined;
    }
    return compiled.expression;
  }

  resolve(node: unknown): Value {
    if (isAlias(node)) return this.resolve(node.resolve(this.doc));
    return node !== null && typeof node === 'object' && 'range' in node ? (node as Node) : null;
  }

  /** The known keys of a mapping; reports unknown, duplicate and non-string keys. */
  fields<K extends string>(node: Value, where: string, known: readonly K[]): Fields<K> | undefined {
    if (!isMap(node)) {
      this.problem(node, `${where}: expected a mapping of ${known.join(', ')}`);
      return undefined;
    }
    const out: Fields<K> = {};
    for (const pair of node.items) {
      const key = this.resolve(pair.key);
      const name = isScalar(key) ? key.value : undefined;
      if (typeof name !== 'string') {
        this.problem(key, `${where}: keys must be strings`, node);
        continue;
      }
      if (!(known as readonly string[]).includes(name)) {
        this.problem(key, `${where}: unknown key "${name}" (expected one of ${known.join(', ')})`);
        continue;
      }
      out[name as K] = { key: key as Node, value: this.resolve(pair.value) };
    }
    return out;
  }

  /** A duration; `allowZero` for settings where 0 means "none". */
  duration(node: Value, where: string, allowZero: boolean): number | undefined {
    const raw = isScalar(node) ? node.value : undefined;
    const d = ruleDurationMs(raw, allowZero);
    if (!d.ok) {
      this.problem(node, `${where}: ${show(node)} ${d.problem} (such as 500ms, 30s, 10m, 2h or 1d)`);
      return undefined;
    }
    const ms = d.ms;
    if (ms === 0 && !allowZero) {
      this.problem(node, `${where}: must be longer than 0`);
      return undefined;
    }
    return ms;
  }

  category(node: Value, where: string): string | undefined {
    const raw = isScalar(node) ? node.value : undefined;
    if (typeof raw !== 'string' || raw.trim() === '') {
      this.problem(node, `${where}: a category must be a non-empty string, not ${show(node)}`);
      return undefined;
    }
    return raw;
  }

  categories(node: Value, where: string): string[] | undefined {
    if (!isSeq(node)) {
      this.problem(node, `${where}: expected a list of categories, such as [support, safety]`);
      return undefined;
    }
    const out: string[] = [];
    let ok = true;
    for (const item of node.items) {
      const category = this.category(this.resolve(item), where);
      if (category === undefined) ok = false;
      else if (!out.includes(category)) out.push(category);
    }
    return ok ? out : undefined;
  }

  required<T>(
    field: Field | undefined,
    parent: Value,
    where: string,
    read: (v: Value) => T | undefined,
  ): T | undefined {
    if (field === undefined) {
      this.problem(parent, `${where} is required`);
      return undefined;
    }
    return read(field.value);
  }
}

function show(node: Value): string {
  if (node === null) return 'nothing';
  if (isScalar(node)) return node.value === null ? 'nothing' : JSON.stringify(node.value);
  return isSeq(node) ? 'a list' : isMap(node) ? 'a mapping' : 'this value';
}

/** `contact:` is one cap (a mapping) or a list of them. */
function readContacts(r: Reader, field: Field): ContactPolicy[] | undefined {
  const node = field.value;
  if (!isSeq(node)) {
    const cap = readContact(r, node, field.key, 'policy.contact');
    return cap ? [cap] : undefined;
  }
  const caps: ContactPolicy[] = [];
  let ok = true;
  node.items.forEach((raw, i) => {
    const item = r.resolve(raw);
    const cap = readContact(r, item, item ?? field.key, `policy.contact[${i}]`);
    if (cap) caps.push(cap);
    else ok = false;
  });
  return ok ? caps : undefined;
}

/** One cap; `parent` is where a missing key is reported. */
function readContact(r: Reader, node: Value, parent: Node, where: string): ContactPolicy | undefined {
  const f = r.fields(node, where, CONTACT_KEYS);
  if (!f) return undefined;
  const max = r.required(f.max, parent, `${where}.max`, (v) => {
    const n = isScalar(v) ? v.value : undefined;
    if (typeof n === 'number' && Number.isInteger(n) && n > 0) return n;
    r.problem(v, `${where}.max: must be a whole number greater than 0, not ${show(v)}`);
    return undefined;
  });
  const perMs = r.required(f.per, parent, `${where}.per`, (v) => r.duration(v, `${where}.per`, false));
  const except = f.except ? r.categories(f.except.value, `${where}.except`) : [];
  const categories = f.categories ? r.categories(f.categories.value, `${where}.categories`) : undefined;
  if (f.categories && f.except) {
    r.problem(f.except.key, `${where}: give either categories (those capped) or except (those not), not both`);
  }
  if (categories?.length === 0) r.problem(f.categories?.value ?? null, `${where}.categories: list at least one`);
  const by = f.by ? r.keyExpression(f.by.value, `${where}.by`, 'profile.customer') : undefined;
  if (max === undefined || perMs === undefined || except === undefined) return undefined;
  if (f.categories && (categories === undefined || categories.length === 0 || f.except)) return undefined;
  if (f.by && by === undefined) return undefined;
  return { max, perMs, ...(categories ? { categories } : {}), except, ...(by ? { by } : {}) };
}

function readExclusive(r: Reader, node: Value): ExclusiveRule[] | undefined {
  if (!isSeq(node)) {
    r.problem(node, 'policy.exclusive: expected a list of { active, for, suppress, by }');
    return undefined;
  }
  const rules: ExclusiveRule[] = [];
  let ok = true;
  node.items.forEach((raw, i) => {
    const item = r.resolve(raw);
    const where = `policy.exclusive[${i}]`;
    const f = r.fields(item, where, EXCLUSIVE_KEYS);
    if (!f) {
      ok = false;
      return;
    }
    const active = r.required(f.active, item, `${where}.active`, (v) => r.category(v, `${where}.active`));
    const forMs = r.required(f.for, item, `${where}.for`, (v) => r.duration(v, `${where}.for`, false));
    const suppress = r.required(f.suppress, item, `${where}.suppress`, (v) => {
      const list = r.categories(v, `${where}.suppress`);
      if (list?.length === 0) r.problem(v, `${where}.suppress: list at least one category`);
      return list?.length === 0 ? undefined : list;
    });
    const by = f.by ? r.keyExpression(f.by.value, `${where}.by`, 'profile.household') : undefined;
    if (active === undefined || forMs === undefined || suppress === undefined || (f.by && !by)) ok = false;
    else rules.push({ active, forMs, suppress, ...(by ? { by } : {}) });
  });
  return ok ? rules : undefined;
}

function readRate(r: Reader, node: Value): RatePolicy | undefined {
  const raw = isScalar(node) ? node.value : undefined;
  const m = typeof raw === 'string' ? /^\s*(\d+)\s*\/\s*(s|m)\s*$/.exec(raw) : null;
  const count = m ? Number(m[1]) : 0;
  const perMs = m ? RATE_UNIT_MS[m[2] ?? ''] : undefined;
  if (perMs === undefined || !Number.isSafeInteger(count) || count <= 0) {
    r.problem(
      node,
      `policy.rate: expected actions per second or minute, such as 100/s or 600/m, not ${show(node)}`,
    );
    return undefined;
  }
  return { count, perMs };
}

function readTtl(r: Reader, node: Value): Map<string, number> | undefined {
  if (!isMap(node)) {
    r.problem(node, 'policy.ttl: expected a mapping of category to duration, such as { offer: 1h }');
    return undefined;
  }
  const out = new Map<string, number>();
  let ok = true;
  for (const pair of node.items) {
    const key = r.resolve(pair.key);
    const category = r.category(key, 'policy.ttl');
    const ms = r.duration(r.resolve(pair.value), category ? `policy.ttl.${category}` : 'policy.ttl', false);
    if (category === undefined || ms === undefined) ok = false;
    else out.set(category, ms);
  }
  return ok ? out : undefined;
}

/**
 * Parses a policy file (`policy.yaml`). Every problem is reported at once with its line; a policy with any
 * problem is rejected as a whole rather than applied in part. With `typing` (the rules declare a schema), the
 * `by:` keys are type-checked against the declared profile.
 */
export function parsePolicy(file: string, text: string, typing?: ExpressionTyping): PolicyResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => ({
      file,
      ...lines.linePos(e.pos[0]),
      message: e.message,
    }));
    return { ok: false, problems };
  }
  const r = new Reader(file, doc, lines, typing);
  const contents = r.resolve(doc.contents);
  const root = isMap(contents) ? r.fields(contents, 'policy file', ['policy']) : undefined;
  if (!root?.policy) r.problem(contents, 'policy file: expected a top-level "policy:" mapping');
  const body = root?.policy?.value ?? null;
  // An empty `policy:` is a valid policy that constrains nothing.
  const empty = body === null || (isScalar(body) && body.value === null);
  const f = root?.policy && !empty ? r.fields(body, 'policy', POLICY_KEYS) : undefined;

  const policy: Policy = { contact: [], exclusive: [], ttlMs: new Map() };
  if (f?.contact) policy.contact = readContacts(r, f.contact) ?? [];
  if (f?.cooldown) {
    const ms = r.duration(f.cooldown.value, 'policy.cooldown', true);
    if (ms !== undefined) policy.cooldownMs = ms;
  }
  if (f?.exclusive) policy.exclusive = readExclusive(r, f.exclusive.value) ?? [];
  if (f?.rate) {
    const rate = readRate(r, f.rate.value);
    if (rate) policy.rate = rate;
  }
  if (f?.ttl) policy.ttlMs = readTtl(r, f.ttl.value) ?? new Map();

  if (r.problems.length > 0) {
    const problems = [...r.problems].sort((a, b) => a.line - b.line || (a.col ?? 0) - (b.col ?? 0));
    return { ok: false, problems };
  }
  return { ok: true, policy };
}

/**
 * Builds a policy from the body of a policy file given as data (`{ contact: { max: 2, per: '1h' } }`), through
 * the same validation as the file; throws RuleError when it is invalid.
 */
export function policyFromObject(body: Record<string, unknown>): Policy {
  const result = parsePolicy('<policy>', stringify({ policy: body }));
  if (!result.ok) throw new RuleError(result.problems);
  return result.policy;
}
