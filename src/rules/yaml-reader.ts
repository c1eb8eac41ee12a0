import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node } from 'yaml';
import { parseDurationMs } from '../shared/index.js';
import type { RuleProblem } from '../shared/index.js';
import type { FieldType } from './schema.js';

/** A template parameter's value: `text` replaces `${name}` in the body, `value` is what CEL sees as `params.name`. */
export interface ParamValue {
  value: unknown;
  text: string;
}

/** One parsed YAML file, and, for a template's body, the parameters of the scenario using it. */
export interface Source {
  file: string;
  /** The file's text, to place a problem inside a scalar (a column within a CEL expression). */
  text: string;
  lines: LineCounter;
  doc: Document;
  params?: ReadonlyMap<string, ParamValue>;
  /** Appended to problems found in a template's body, naming the scenario that used it. */
  usedBy?: string;
}

export type YamlNode = Node | null;

/** Where in a node a problem is (characters from its start), and how to fix it. */
export interface ProblemDetail {
  at?: number;
  hint?: string;
}

/** A key of a mapping with its value, and the file both came from. */
export interface Field {
  src: Source;
  key: Node;
  value: YamlNode;
}

const PARAM_REF = /\$\{([^}]*)\}/g;
const WHOLE_PARAM_REF = /^\$\{([^}]*)\}$/;

export function parseYaml(file: string, text: string): { src: Source; problems: RuleProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const problems = [...doc.errors, ...doc.warnings].map((e) => ({
    file,
    ...lines.linePos(e.pos[0]),
    message: e.message.split('\n')[0] ?? e.message,
  }));
  return { src: { file, text, lines, doc }, problems };
}

/** Describes a node for a message: `"abc"`, `42`, `a list`. */
export function show(node: YamlNode): string {
  if (node === null) return 'nothing';
  if (isScalar(node)) return node.value === null ? 'nothing' : JSON.stringify(node.value);
  return isSeq(node) ? 'a list' : isMap(node) ? 'a mapping' : 'this value';
}

/** The outcome of type-checking one expression: its CEL type, or what is wrong, where, and a hint. */
export type TypeCheck = { ok: true; type: string } | { ok: false; message: string; at?: number; hint?: string };

/** What expressions and event types are checked against when the rules declare their inputs (rules/typing.ts). */
export interface ExpressionTyping {
  readonly schema: { readonly file: string };
  /** Whether a device, the cloud, the broker or a scenario produces the event type. */
  knows(event: string): boolean;
  closestEvent(event: string): string | undefined;
  /**
   * Checks an expression with `variables` in scope, `data` being of `events` (undefined: any event); `declared`
   * types the variables a scenario binds itself.
   */
  check(
    source: string,
    variables: readonly string[],
    events: readonly string[] | undefined,
    declared?: ReadonlyMap<string, FieldType>,
  ): TypeCheck;
}

/** Walks YAML nodes, converting them to typed values and collecting every problem with its file and line. */
export class Reader {
  readonly problems: RuleProblem[] = [];
  /** Set when the rules declare a schema: expressions are then type-checked, and event types must be known. */
  typing: ExpressionTyping | undefined;
  /**
   * The event types `data` belongs to in the expressions being read (those of the `when`, or of a sequence
   * step); undefined for any event.
   */
  dataEvents: readonly string[] | undefined;

  lineOf(src: Source, node: YamlNode | undefined): number {
    const range = node?.range;
    return range ? src.lines.linePos(range[0]).line : 1;
  }

  /**
   * Reports a problem at `node`, or `at` characters into its text (a place within a CEL expression), with a
   * hint on how to fix it when there is one.
   */
  problem(src: Source, node: YamlNode | undefined, message: string, more: ProblemDetail = {}): void {
    const suffix = src.usedBy !== undefined ? ` (${src.usedBy})` : '';
    const start = node?.range?.[0];
    const pos = start !== undefined ? src.lines.linePos(start + (more.at ?? 0)) : { line: 1, col: 1 };
    const p: RuleProblem = { file: src.file, line: pos.line, col: pos.col, message: message + suffix };
    if (more.hint !== undefined) p.hint = more.hint;
    this.problems.push(p);
  }

  resolve(src: Source, node: unknown): YamlNode {
    if (isAlias(node)) return this.resolve(src, node.resolve(src.doc));
    return node !== null && typeof node === 'object' && 'range' in node ? (node as Node) : null;
  }

  /** The fields of a mapping; reports non-mappings, non-string keys and keys not in `known`. */
  fields(
    src: Source,
    node: YamlNode,
    where: string,
    known: readonly string[],
  ): Map<string, Field> | undefined {
    if (!isMap(node)) {
      this.problem(src, node, `${where}: expected a mapping, not ${show(node)}`);
      return undefined;
    }
    const out = new Map<string, Field>();
    for (const pair of node.items) {
      const key = this.resolve(src, pair.key);
      const name = isScalar(key) ? key.value : undefined;
      if (typeof name !== 'string' || key === null) {
        this.problem(src, key ?? node, `${where}: keys must be strings`);
        continue;
      }
      if (!known.includes(name)) {
        this.problem(src, key, `${where}: unknown key "${name}" (expected one of ${known.join(', ')})`);
        continue;
      }
      out.set(name, { src, key, value: this.resolve(src, pair.value) });
    }
    return out;
  }

  /**
   * A scalar's value, with template parameters substituted: `${count}` alone gives the parameter's own
   * value (a number stays a number), inside a longer string its text.
   */
  scalar(src: Source, node: YamlNode, asText = false): { ok: true; value: unknown } | { ok: false } {
    if (!isScalar(node)) return { ok: true, value: node === null ? null : undefined };
    const raw = node.value;
    if (typeof raw !== 'string' || src.params === undefined || !raw.includes('${'))
      return { ok: true, value: raw };
    const whole = WHOLE_PARAM_REF.exec(raw);
    if (whole) {
      const p = src.params.get((whole[1] ?? '').trim());
      if (p === undefined) {
        this.problem(src, node, `unknown template parameter ${raw}`);
        return { ok: false };
      }
      return { ok: true, value: asText ? p.text : p.value };
    }
    let ok = true;
    const value = raw.replace(PARAM_REF, (ref: string, name: string) => {
      const p = src.params?.get(name.trim());
      if (p === undefined) {
        this.problem(src, node, `unknown template parameter ${ref}`);
        ok = false;
        return ref;
      }
      return p.text;
    });
    return ok ? { ok: true, value } : { ok: false };
  }

  string(src: Source, node: YamlNode, where: string, example?: string): string | undefined {
    const r = this.scalar(src, node);
    if (!r.ok) return undefined;
    if (typeof r.value === 'string' && r.value.trim() !== '') return r.value;
    const hint = example !== undefined ? `, such as ${example}` : '';
    this.problem(src, node, `${where}: expected a non-empty string${hint}, not ${show(node)}`);
    return undefined;
  }

  /** A CEL expression's source: a string, or a plain number or boolean written as such. */
  celSource(src: Source, node: YamlNode, where: string): string | undefined {
    const r = this.scalar(src, node);
    if (!r.ok) return undefined;
    if (typeof r.value === 'string' && r.value.trim() !== '') return r.value;
    if (typeof r.value === 'number' || typeof r.value === 'boolean') return String(r.value);
    this.problem(src, node, `${where}: expected a CEL expression, not ${show(node)}`);
    return undefined;
  }

  integer(src: Source, node: YamlNode, where: string, min: number, max: number): number | undefined {
    const r = this.scalar(src, node);
    if (!r.ok) return undefined;
    const v = r.value;
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    this.problem(
      src,
      node,
      `${where}: expected a whole number from ${min} to ${max}, not ${showValue(v, node)}`,
    );
    return undefined;
  }

  duration(src: Source, node: YamlNode, where: string, maxMs: number): number | undefined {
    // A parameter stands for its text here (`${within}` is `5m`), so that its unit is seen.
    const r = this.scalar(src, node, true);
    if (!r.ok) return undefined;
    const d = ruleDurationMs(r.value, false);
    if (!d.ok) {
      this.problem(src, node, `${where}: ${showValue(r.value, node)} ${d.problem}`, { hint: d.hint });
      return undefined;
    }
    if (d.ms <= 0 || d.ms > maxMs) {
      this.problem(src, node, `${where}: must be longer than 0 and at most ${maxMs / 86_400_000} days`);
      return undefined;
    }
    return d.ms;
  }

  /** A list of strings, or a single string standing for a list of one. */
  stringList(src: Source, node: YamlNode, where: string, example: string): string[] | undefined {
    if (isSeq(node)) {
      const out: string[] = [];
      let ok = true;
      for (const item of node.items) {
        const s = this.string(src, this.resolve(src, item), where, example);
        if (s === undefined) ok = false;
        else out.push(s);
      }
      return ok ? out : undefined;
    }
    const one = this.string(src, node, where, example);
    return one === undefined ? undefined : [one];
  }
}

function showValue(value: unknown, node: YamlNode): string {
  if (value === undefined) return show(node);
  if (value === null) return 'nothing';
  return typeof value === 'string' || typeof value === 'number' ? JSON.stringify(value) : show(node);
}

/**
 * A duration of a rule file: a number with its unit (`500ms`, `30s`, `5m`, `24h`, `1d`). A bare number is
 * refused, since nothing says whether `cooldown: 10` means ten milliseconds or ten minutes; only 0 may go
 * without one, where `allowZero` (0 meaning none).
 */
export function ruleDurationMs(
  value: unknown,
  allowZero: boolean,
): { ok: true; ms: number } | { ok: false; problem: string; hint: string } {
  if (typeof value === 'number' && Number.isFinite(value)) {
    if (value === 0 && allowZero) return { ok: true, ms: 0 };
    return {
      ok: false,
      problem: 'has no unit',
      hint: `durations need a unit: ${value}ms, ${value}s, ${value}m, ${value}h or ${value}d`,
    };
  }
  const ms = parseDurationMs(value);
  if (ms !== undefined && typeof value === 'string') return { ok: true, ms };
  return {
    ok: false,
    problem: 'is not a duration',
    hint: 'write a number and a unit, such as 500ms, 30s, 5m, 24h or 1d',
  };
}
