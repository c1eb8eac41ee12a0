import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isMap, isScalar, isSeq } from 'yaml';
import { formatProblem } from '../shared/index.js';
import type { RuleProblem } from '../shared/index.js';
import { findEmitCycles } from './emit-cycles.js';
import { parsePolicy } from './policy.js';
import type { Policy } from './policy.js';
import { parseScenario } from './scenario-parser.js';
import type { ParsedScenario } from './scenario-parser.js';
import { readTemplate } from './template.js';
import type { Template } from './template.js';
import type { LoadResult, Scenario } from './types.js';
import { parseYaml, Reader } from './yaml-reader.js';
import type { Source, YamlNode } from './yaml-reader.js';

/** Folder of a rules directory holding templates; read along with the directory itself. */
export const TEMPLATES_DIR = 'templates';
const RULE_FILE = /\.ya?ml$/i;

type Kind = 'policy' | 'template' | 'scenarios' | 'empty';

function kindOf(node: YamlNode): Kind {
  if (node === null || (isScalar(node) && node.value === null)) return 'empty';
  if (isMap(node)) {
    const keys = node.items.map((p) => (isScalar(p.key) ? p.key.value : undefined));
    if (keys.includes('policy')) return 'policy';
    if (keys.includes('template')) return 'template';
  }
  return 'scenarios';
}

/**
 * Compiles rule files given as text (a directory read from disk, or a signed bundle): scenarios,
 * templates and at most one policy. Every problem in every file is reported, each with its file and line.
 */
export function compileRuleFiles(files: ReadonlyArray<{ path: string; text: string }>): LoadResult {
  const r = new Reader();
  const parsed: Array<{ src: Source; text: string; kind: Kind }> = [];
  for (const file of files) {
    const { src, problems } = parseYaml(file.path, file.text);
    if (problems.length > 0) {
      r.problems.push(...problems);
      continue;
    }
    parsed.push({ src, text: file.text, kind: kindOf(r.resolve(src, src.doc.contents)) });
  }

  let policy: Policy | undefined;
  let policyFile: string | undefined;
  for (const p of parsed.filter((x) => x.kind === 'policy')) {
    if (policyFile !== undefined) {
      r.problems.push({
        file: p.src.file,
        line: 1,
        message: `a second policy file (the first is ${policyFile})`,
      });
      continue;
    }
    policyFile = p.src.file;
    const result = parsePolicy(p.src.file, p.text);
    if (result.ok) policy = result.policy;
    else r.problems.push(...result.problems);
  }

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
        r.problems.push({
          file: s.scenario.file,
          line: s.scenario.line,
          message: `duplicate scenario id ${s.scenario.id} (first defined at ${first.file}:${first.line})`,
        });
        continue;
      }
      byId.set(s.scenario.id, s.scenario);
      scenarios.push(s);
    }
  }

  for (const cycle of findEmitCycles(scenarios.map((s) => s.scenario))) {
    const head = scenarios.find((s) => s.scenario.id === cycle[0]);
    const at = head?.emitAt ?? { file: head?.scenario.file ?? '', line: head?.scenario.line ?? 1 };
    r.problems.push({ ...at, message: `emit cycle: ${cycle.join(' -> ')}` });
  }

  if (r.problems.length > 0) return { ok: false, problems: sortProblems(r.problems, files) };
  const rules = {
    scenarios: scenarios.map((s) => s.scenario),
    files: files.map((f) => f.path),
    sources: files.map(({ path, text }) => ({ path, text })),
  };
  return { ok: true, rules: policy ? { ...rules, policy } : rules };
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
      problems: [{ file: dir, line: 0, message: `cannot read the rules directory (${reason})` }],
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

/** Validates a rules directory: `file:line: message` for each problem, none when it loads. */
export async function checkRulesDir(dir: string): Promise<string[]> {
  const result = await loadRulesDir(dir);
  return result.ok ? [] : result.problems.map(formatProblem);
}
