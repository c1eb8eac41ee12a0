import type { RuleSet, Scenario } from '../rules/index.js';
import type { BacktestChange, BacktestDiff, RunVerdict } from '../runtime/backtest.js';
import type { ReplayError, ReplayOutput } from '../runtime/index.js';
import { VigilError } from '../shared/index.js';

// What `vigil replay` and `vigil backtest` print for people: tables, ISO times, the errors met on the way.

/** How many evaluation errors are printed one by one; the rest are counted. */
export const ERRORS_SHOWN = 20;

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Rows of cells as a left-aligned table, the first row its header, columns two spaces apart. */
export function table(rows: ReadonlyArray<readonly string[]>): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** One row per scenario of a run: actions sent and suppressed, and expressions that failed. */
export function runSummary(actions: readonly ReplayOutput[], errors: readonly ReplayError[]): string[] {
  const by = new Map<string, { sent: number; suppressed: number; errors: number }>();
  const row = (scenario: string) => {
    let counts = by.get(scenario);
    if (counts === undefined) by.set(scenario, (counts = { sent: 0, suppressed: 0, errors: 0 }));
    return counts;
  };
  for (const a of actions) row(a.scenario)[a.suppressed === undefined ? 'sent' : 'suppressed']++;
  for (const e of errors) row(e.scenario).errors++;
  if (by.size === 0) return ['no scenario decided anything'];
  const rows = [...by].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return table([
    ['scenario', 'sent', 'suppressed', 'errors'],
    ...rows.map(([scenario, c]) => [scenario, String(c.sent), String(c.suppressed), String(c.errors)]),
  ]);
}

/** The evaluation errors one a line (time, scenario, actor, where in the rule, why), the first `ERRORS_SHOWN` of them. */
export function errorLines(errors: readonly ReplayError[], label = ''): string[] {
  const lines = errors
    .slice(0, ERRORS_SHOWN)
    .map((e) => `${label}error ${iso(e.at)} ${e.scenario} ${e.actor} (${e.stage}): ${e.message}`);
  if (errors.length > ERRORS_SHOWN) lines.push(`${label}… and ${errors.length - ERRORS_SHOWN} more errors`);
  return lines;
}

/** Whether an expression of the scenario reads `profile` (its `when`, `by`, payload or emit). */
function readsProfile(value: unknown, seen = new Set<unknown>()): boolean {
  if (value === null || typeof value !== 'object' || seen.has(value)) return false;
  seen.add(value);
  const o = value as Record<string, unknown>;
  if (typeof o['source'] === 'string' && typeof o['evaluate'] === 'function')
    return /\bprofile\b/.test(o['source']);
  const values = value instanceof Map ? [...(value as Map<unknown, unknown>).values()] : Object.values(o);
  return values.some((v) => readsProfile(v, seen));
}

/** The scenarios of `rules` whose expressions read the profile. */
export function profileDependent(rules: RuleSet): string[] {
  return rules.scenarios
    .filter((sc: Scenario) => readsProfile([sc.when, sc.by, sc.payload, sc.emit]))
    .map((sc) => sc.id);
}

/** Refused: rules that read profiles run with none given (each would decide as if every profile field were missing). */
export class ProfilesMissingError extends VigilError {
  constructor(scenarios: readonly string[]) {
    super(
      'VIGIL_PROFILES_MISSING',
      `${scenarios.length === 1 ? 'scenario' : 'scenarios'} ${scenarios.join(', ')} ${scenarios.length === 1 ? 'reads' : 'read'} ` +
        'device profiles, and no profiles were given: every condition and payload that reads one would fail',
      {
        hint: 'give --profiles FILE (NDJSON, one {"id": ..., fields} a line), or --without-profiles to run them anyway',
      },
    );
  }
}

function verdictText(v: RunVerdict): string {
  switch (v.verdict) {
    case 'sent':
      return 'sent';
    case 'suppressed':
      return `suppressed (${v.reason})`;
    case 'none':
      return 'not decided';
  }
}

const MARK: Readonly<Record<BacktestChange['kind'], string>> = {
  'fires-newly': '+',
  'no-longer-fires': '-',
  'changed-payload': '~',
  'changed-suppression': '!',
};

function changeLine(c: BacktestChange): string {
  const head = `  ${MARK[c.kind]} ${iso(c.eventAt)} ${c.actor}`;
  switch (c.kind) {
    case 'fires-newly':
      return `${head} fires newly: ${JSON.stringify(c.new.payload ?? {})}`;
    case 'no-longer-fires':
      return `${head} no longer fires (was ${JSON.stringify(c.old.payload ?? {})})`;
    case 'changed-payload':
      return `${head} payload ${JSON.stringify(c.old.payload ?? {})} → ${JSON.stringify(c.new.payload ?? {})}`;
    case 'changed-suppression':
      return `${head} ${verdictText(c.old)} → ${verdictText(c.new)}`;
  }
}

/** The backtest for people: the per-scenario diff (each changed action a line), then the summary table. */
export function backtestText(diff: BacktestDiff, limitPerScenario: number): string[] {
  const out: string[] = [];
  for (const s of diff.scenarios) {
    const changes = diff.changes.filter((c) => c.scenario === s.scenario);
    if (changes.length === 0) continue;
    const counts = (
      [
        ['fires-newly', 'fire newly'],
        ['no-longer-fires', 'no longer fire'],
        ['changed-payload', 'changed payload'],
        ['changed-suppression', 'changed suppression'],
      ] as const
    )
      .filter(([kind]) => s.changes[kind] > 0)
      .map(([kind, words]) => `${s.changes[kind]} ${words}`);
    out.push(`${s.scenario}: ${counts.join(', ')}`);
    for (const c of changes.slice(0, limitPerScenario)) out.push(changeLine(c));
    if (changes.length > limitPerScenario) out.push(`  … and ${changes.length - limitPerScenario} more`);
    out.push('');
  }
  if (out.length === 0) out.push('no differences', '');
  out.push(
    ...table([
      [
        'scenario',
        'old sent',
        'old suppr',
        'new sent',
        'new suppr',
        '+new',
        '-gone',
        '~payload',
        '!suppr',
        'errors old/new',
      ],
      ...diff.scenarios.map((s) => [
        s.scenario,
        String(s.old.sent),
        String(s.old.suppressed),
        String(s.new.sent),
        String(s.new.suppressed),
        String(s.changes['fires-newly']),
        String(s.changes['no-longer-fires']),
        String(s.changes['changed-payload']),
        String(s.changes['changed-suppression']),
        `${s.old.errors}/${s.new.errors}`,
      ]),
    ]),
  );
  return out;
}
