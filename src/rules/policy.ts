import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, stringify } from 'yaml';
import type { Document, Node } from 'yaml';
import { RuleError } from '../shared/index.js';
import type { Expression, RuleProblem } from '../shared/index.js';
import { compileExpression } from './cel.js';
import { ruleDurationMs } from './yaml-reader.js';

/** How often one contact key may be reached, across all scenarios. */
export interface ContactPolicy {
  /** Most actions sent to one contact key within `perMs`. */
  max: number;
  perMs: number;
  /** Categories that are never capped; their actions do not count toward `max` either. */
  except: readonly string[];
  /**
   * Computes the contact key over `{ profile, actor }` (e.g. `profile.customer`, so that the devices of one
   * household share one cap). Without it, or when it yields no string or number, the key is the actor.
   */
  by?: Expression;
}

/** While an actor has had a sent action of category `active` within `forMs`, `suppress` categories are held back. */
export interface ExclusiveRule {
  active: string;
  forMs: number;
  suppress: readonly string[];
}

/** `count` upstream actions per `perMs`; the uplink delays beyond it, it never suppresses. */
export interface RatePolicy {
  count: number;
  perMs: number;
}

/** The contact policy of a rules directory (`policy.yaml`). Absent parts impose no constraint. */
export interface Policy {
  contact?: ContactPolicy;
  /** Default cooldown per scenario and actor (per group for grouped scenarios); a scenario may set its own. */
  cooldownMs?: number;
  exclusive: readonly ExclusiveRule[];
  rate?: RatePolicy;
  /** How long an action of a category may wait in the outbox before it is dropped instead of sent late. */
  ttlMs: ReadonlyMap<string, number>;
}

export type PolicyResult = { ok: true; policy: Policy } | { ok: false; problems: RuleProblem[] };

const POLICY_KEYS = ['contact', 'cooldown', 'exclusive', 'rate', 'ttl'] as const;
const CONTACT_KEYS = ['max', 'per', 'except', 'by'] as const;
const EXCLUSIVE_KEYS = ['active', 'for', 'suppress'] as const;
/** What `contact.by` may refer to: a name outside these is a typo, caught when the policy loads. */
const CONTACT_BY_VARIABLES = ['profile', 'actor'];
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

  constructor(file: string, doc: Document, lines: LineCounter) {
    this.file = file;
    this.doc = doc;
    this.lines = lines;
  }

  lineOf(node: Value, fallback?: Value): number {
    const range = node?.range ?? fallback?.range;
    return range ? this.lines.linePos(range[0]).line : 1;
  }

  problem(at: Value, message: string, fallback?: Value): void {
    const range = at?.range ?? fallback?.range;
    const pos = range ? this.lines.linePos(range[0]) : { line: 1, col: 1 };
    this.problems.push({ file: this.file, line: pos.line, col: pos.col, message });
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

function readContact(r: Reader, field: Field): ContactPolicy | undefined {
  const f = r.fields(field.value, 'policy.contact', CONTACT_KEYS);
  if (!f) return undefined;
  const max = r.required(f.max, field.key, 'policy.contact.max', (v) => {
    const n = isScalar(v) ? v.value : undefined;
    if (typeof n === 'number' && Number.isInteger(n) && n > 0) return n;
    r.problem(v, `policy.contact.max: must be a whole number greater than 0, not ${show(v)}`);
    return undefined;
  });
  const perMs = r.required(f.per, field.key, 'policy.contact.per', (v) =>
    r.duration(v, 'policy.contact.per', false),
  );
  const except = f.except ? r.categories(f.except.value, 'policy.contact.except') : [];
  let by: Expression | undefined;
  if (f.by) {
    const v = f.by.value;
    const source = isScalar(v) ? v.value : undefined;
    if (typeof source !== 'string' || source.trim() === '') {
      r.problem(v, `policy.contact.by: expected a CEL expression such as profile.customer, not ${show(v)}`);
    } else {
      const compiled = compileExpression(source, { variables: CONTACT_BY_VARIABLES });
      if (compiled.ok) by = compiled.expression;
      else r.problem(v, `policy.contact.by: ${compiled.message}`);
    }
  }
  if (max === undefined || perMs === undefined || except === undefined) return undefined;
  return by ? { max, perMs, except, by } : { max, perMs, except };
}

function readExclusive(r: Reader, node: Value): ExclusiveRule[] | undefined {
  if (!isSeq(node)) {
    r.problem(node, 'policy.exclusive: expected a list of { active, for, suppress }');
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
    if (active === undefined || forMs === undefined || suppress === undefined) ok = false;
    else rules.push({ active, forMs, suppress });
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
 * problem is rejected as a whole rather than applied in part.
 */
export function parsePolicy(file: string, text: string): PolicyResult {
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
  const r = new Reader(file, doc, lines);
  const contents = r.resolve(doc.contents);
  const root = isMap(contents) ? r.fields(contents, 'policy file', ['policy']) : undefined;
  if (!root?.policy) r.problem(contents, 'policy file: expected a top-level "policy:" mapping');
  const body = root?.policy?.value ?? null;
  // An empty `policy:` is a valid policy that constrains nothing.
  const empty = body === null || (isScalar(body) && body.value === null);
  const f = root?.policy && !empty ? r.fields(body, 'policy', POLICY_KEYS) : undefined;

  const policy: Policy = { exclusive: [], ttlMs: new Map() };
  if (f?.contact) {
    const contact = readContact(r, f.contact);
    if (contact) policy.contact = contact;
  }
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
    const problems = [...r.problems].sort((a, b) => a.line - b.line);
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
