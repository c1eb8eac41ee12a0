import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isMap, isScalar, isSeq } from 'yaml';
import { formatProblem } from '../shared/index.js';
import type { RuleProblem } from '../shared/index.js';
import { findEmitCycles } from './emit-cycles.js';
import { applyParamsFile } from './params-file.js';
import { parsePolicy } from './policy.js';
import type { Policy } from './policy.js';
import { parseScenario } from './scenario-parser.js';
import type { ParsedScenario } from './scenario-parser.js';
import { readTemplate } from './template.js';
import type { Template } from './template.js';
import { readSchema } from './schema.js';
import type { LoadResult, RuleSet, Scenario } from './types.js';
import { RuleTyping } from './typing.js';
import { parseYaml, Reader } from './yaml-reader.js';
import type { Source, YamlNode } from './yaml-reader.js';

/** Folder of a rules directory holding templates; read along with the directory itself. */
export const TEMPLATES_DIR = 'templates';
const RULE_FILE = /\.ya?ml$/i;

type Kind = 'policy' | 'template' | 'schema' | 'params' | 'scenarios' | 'empty';

function kindOf(node: YamlNode): Kind {
  if (node === null || (isScalar(node) && node.value === null)) return 'empty';
  if (isMap(node)) {
    const keys = node.items.map((p) => (isScalar(p.key) ? p.key.value : undefined));
    if (keys.includes('policy')) return 'policy';
    if (keys.includes('template')) return 'template';
    if (keys.includes('schema')) return 'schema';
    if (keys.includes('params') && !keys.includes('id')) return 'params';
  }
  return 'scenarios';
}

interface Parsed {
  src: Source;
  text: string;
  kind: Kind;
}

/**
 * Compiles rule files given as text (a directory read from disk, or a signed bundle): scenarios,
 * templates, at most one policy, at most one schema and at most one parameter file (`params.yaml`). Every problem in every file is reported, each with
 * its file, line and column. With a schema, every expression is type-checked against it and every event
 * type a scenario listens to must be declared or emitted; without one, types are not checked.
 */
export function compileRuleFiles(files: ReadonlyArray<{ path: string; text: string }>): LoadResult {
  const r = new Reader();
  const parsed: Parsed[] = [];
  for (const file of files) {
    const { src, problems } = parseYaml(file.path, file.text);
    if (problems.length > 0) {
      r.problems.push(...problems);
      continue;
    }
    parsed.push({ src, text: file.text, kind: kindOf(r.resolve(src, src.doc.contents)) });
  }
  const templates = readTemplates(r, parsed);
  const schema = only(r, parsed, 'schema', 'schema file');
  const typing = schema ? readSchema(r, schema.src, r.resolve(schema.src, schema.src.doc.contents)) : undefined;
  if (typing) r.typing = new RuleTyping(typing, emittedEvents(parsed));
  const policy = readPolicy(r, parsed);
  const scenarios = readScenarios(r, parsed, templates);
  const params = only(r, parsed, 'params', 'parameter file');
  if (params) applyParamsFile(r, params.src, r.resolve(params.src, params.src.doc.contents), scenarios, typing?.profile);

  for (const cycle of findEmitCycles(scenarios.map((s) => s.scenario))) {
    const head = scenarios.find((s) => s.scenario.id === cycle[0]);
    const at = head?.emitAt ?? { file: head?.scenario.file ?? '', line: head?.scenario.line ?? 1 };
    r.problems.push({ ...at, message: `emit cycle: ${cycle.join(' -> ')}` });
  }

  if (r.problems.length > 0) {
    const problems = sortProblems(r.problems, files);
    return typing ? { ok: false, problems, schema: typing.file } : { ok: false, problems };
  }
  const rules: RuleSet = {
    scenarios: scenarios.map((s) => s.scenario),
    files: files.map((f) => f.path),
    sources: files.map(({ path, text }) => ({ path, text })),
  };
  if (policy) rules.policy = policy;
  if (typing) rules.schema = typing.file;
  return { ok: true, rules };
}

/** The one file of a kind there may be at most one of; a second is a problem. */
function only(r: Reader, parsed: readonly Parsed[], kind: Kind, what: string): Parsed | undefined {
  const [first, ...more] = parsed.filter((x) => x.kind === kind);
  for (const p of more)
    r.problems.push({
      file: p.src.file,
      line: 1,
      col: 1,
      message: `a second ${what} (the first is ${first?.src.file ?? ''})`,
    });
  return first;
}

function readPolicy(r: Reader, parsed: readonly Parsed[]): Policy | undefined {
  const p = only(r, parsed, 'policy', 'policy file');
  if (!p) return undefined;
  const result = parsePolicy(p.src.file, p.text, r.typing);
  if (result.ok) return result.policy;
  r.problems.push(...result.problems);
  return undefined;
}

function readTemplates(r: Reader, parsed: readonly Parsed[]): Map<string, Template> {
  const templates = new Map<string, Template>();
  for (const p of parsed.filter((x) => x.kind === 'template')) {
    const tpl = readTemplate(r, p.src, r.resolve(p.src, p.src.doc.contents));
    if (!tpl) continue;
    const first = templates.get(tpl.name);
    if (first) {
      r.problems.push({
        file: tpl.src.file,
        line: tpl.line,
        message: `template ${tpl.name} is already defined at ${first.src.file}:${first.line}`,
      });
      continue;
    }
    templates.set(tpl.name, tpl);
  }
  return templates;
}

function readScenarios(
  r: Reader,
  parsed: readonly Parsed[],
  templates: ReadonlyMap<string, Template>,
): ParsedScenario[] {
  const scenarios: ParsedScenario[] = [];
  const byId = new Map<string, Scenario>();
  for (const p of parsed.filter((x) => x.kind === 'scenarios')) {
    const root = r.resolve(p.src, p.src.doc.contents);
    const nodes = isSeq(root) ? root.items.map((item) => r.resolve(p.src, item)) : [root];
    for (const node of nodes) {
      const s = parseScenario(r, p.src, node, templates);
      if (!s) continue;
      const first = byId.get(s.scenario.id);
      if (first) {
        r.problem(p.src, node, `duplicate scenario id ${s.scenario.id} (first defined at ${first.file}:${first.line})`);
        continue;
      }
      byId.set(s.scenario.id, s.scenario);
      scenarios.push(s);
    }
  }
  return scenarios;
}

/**
 * The event types the scenarios and templates emit, with the names of their data fields, read from the files
 * as written: a scenario may listen to an event another one emits, wherever that one is defined.
 */
function emittedEvents(parsed: readonly Parsed[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of parsed.filter((x) => x.kind === 'scenarios' || x.kind === 'template')) {
    let body: unknown;
    try {
      body = p.src.doc.toJS();
    } catch {
      continue;
    }
    for (const item of Array.isArray(body) ? body : [body]) {
      const emit = (item as { then?: { emit?: unknown } } | null)?.then?.emit;
      const e = typeof emit === 'string' ? { event: emit } : (emit as { event?: unknown; data?: unknown });
      if (typeof e?.event !== 'string') continue;
      const data = e.data !== null && typeof e.data === 'object' ? Object.keys(e.data) : [];
      out.set(e.event, [...new Set([...(out.get(e.event) ?? []), ...data])]);
    }
  }
  return out;
}

function sortProblems(problems: RuleProblem[], files: ReadonlyArray<{ path: string }>): RuleProblem[] {
  const order = new Map(files.map((f, i) => [f.path, i]));
  return problems
    .map((p, i) => ({ p, i }))
    .sort(
      (a, b) => (order.get(a.p.file) ?? -1) - (order.get(b.p.file) ?? -1) || a.p.line - b.p.line || a.i - b.i,
    )
    .map((x) => x.p);
}

async function listRuleFiles(dir: string): Promise<string[]> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && RULE_FILE.test(e.name))
    .map((e) => e.name)
    .sort();
  return names.map((n) => join(dir, n));
}

/**
 * Loads the `*.yaml` files of a rules directory and of its `templates/` folder. With `overlay`, the
 * `*.yaml` files of that directory replace the files of the same name (the demo's short periods).
 */
export async function loadRulesDir(dir: string, opts: { overlay?: string } = {}): Promise<LoadResult> {
  let paths: string[];
  try {
    paths = await listRuleFiles(dir);
    if (opts.overlay !== undefined) {
      const overlay = await listRuleFiles(opts.overlay);
      const replaced = new Set(overlay.map((p) => basename(p)));
      paths = [...paths.filter((p) => !replaced.has(basename(p))), ...overlay];
    }
  } catch (err) {
    const reason = err instanceof Error && 'code' in err ? String(err.code) : String(err);
    return {
      ok: false,
      problems: [
        {
          file: dir,
          line: 0,
          message: `cannot read the rules directory (${reason})`,
          hint: 'check the directory given with --rules (or `rules:` in the config): it must exist and be readable',
        },
      ],
    };
  }
  const templatesDir = join(dir, TEMPLATES_DIR);
  const isDir = await stat(templatesDir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (isDir) paths.push(...(await listRuleFiles(templatesDir)));
  const files = await Promise.all(paths.map(async (path) => ({ path, text: await readFile(path, 'utf8') })));
  return compileRuleFiles(files);
}

/** Validates a rules directory: `file:line:col: message` for each problem, none when it loads. */
export async function checkRulesDir(dir: string): Promise<string[]> {
  const result = await loadRulesDir(dir);
  return result.ok ? [] : result.problems.map(formatProblem);
}

/** What `vigil rules check` found: the problems, and whether the types were checked (and against what). */
export interface RulesCheck {
  /** The rules directory that was compiled (the file's own, for a file). */
  dir: string;
  /** Only the problems of this file are reported, when a file was checked. */
  file?: string;
  problems: RuleProblem[];
  /** When a file was checked: the problems in the other files of its directory, not reported. */
  elsewhere: number;
  /** The schema file the expressions were type-checked against; absent when the rules declare none. */
  schema?: string;
  scenarios: number;
}

/**
 * Checks a rules directory, or one rule file: a file is compiled with the directory it belongs to (its
 * templates, schema and the events other scenarios emit), and its own problems are reported.
 */
export async function checkRules(path: string): Promise<RulesCheck> {
  const info = await stat(path).catch((err: unknown) => err as NodeJS.ErrnoException);
  if (info instanceof Error) {
    const problem = { file: path, line: 0, message: `cannot read ${path} (${info.code ?? info.message})` };
    return { dir: path, problems: [problem], elsewhere: 0, scenarios: 0 };
  }
  if (info.isDirectory()) {
    const result = await loadRulesDir(path);
    return result.ok
      ? { dir: path, problems: [], elsewhere: 0, scenarios: result.rules.scenarios.length, ...schemaOf(result.rules.schema) }
      : { dir: path, problems: result.problems, elsewhere: 0, scenarios: 0, ...schemaOf(result.schema) };
  }
  const file = path;
  if (!RULE_FILE.test(file)) {
    const problem = { file, line: 0, message: 'not a rule file (rule files end in .yaml or .yml)' };
    return { dir: dirname(file), file, problems: [problem], elsewhere: 0, scenarios: 0 };
  }
  const own = dirname(file);
  const dir = basename(own) === TEMPLATES_DIR ? dirname(own) : own;
  const result = await loadRulesDir(dir);
  const mine = (f: string): boolean => resolve(f) === resolve(file);
  if (result.ok) {
    const scenarios = result.rules.scenarios.filter((s) => mine(s.file)).length;
    return { dir, file, problems: [], elsewhere: 0, scenarios, ...schemaOf(result.rules.schema) };
  }
  const problems = result.problems.filter((p) => mine(p.file));
  const elsewhere = result.problems.length - problems.length;
  return { dir, file, problems, elsewhere, scenarios: 0, ...schemaOf(result.schema) };
}

function schemaOf(schema: string | undefined): { schema?: string } {
  return schema !== undefined ? { schema } : {};
}
