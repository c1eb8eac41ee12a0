import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { compileRuleFiles, loadRulesDir, shippedRulesDir } from '../../src/rules/index.js';
import type { LoadResult } from '../../src/rules/index.js';
import { parseEventsNdjson, replay } from '../../src/runtime/replay.js';
import type { ReplayError } from '../../src/runtime/replay.js';
import { formatProblem, parseDurationMs } from '../../src/shared/index.js';
import type { Event, Profile } from '../../src/shared/index.js';

/**
 * Golden scenarios: each file of test/fixtures/scenarios gives rules (directories relative to the
 * repository, the shipped rules/ by default), profiles, timestamped events and the actions expected,
 * and runs through `replay`, the code behind `vigil replay`.
 */
const DIR = 'test/fixtures/scenarios';

interface Golden {
  description: string;
  rules?: string | string[];
  /** Runs only these scenarios of the rules, to keep a golden about one thing. */
  only?: string[];
  profiles?: Record<string, Profile>;
  events?: Array<Record<string, unknown>>;
  until?: number | string;
  /** Through the Arbiter and the rules' policy, as `vigil replay` does. */
  arbitrate?: boolean;
  expect?: Array<Record<string, unknown>>;
  errors?: Array<Record<string, unknown>>;
  loadErrors?: string[];
}

/** A time: milliseconds, a duration (`5m`), or a sum of them (`24h + 1ms`). */
function time(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') throw new Error(`not a time: ${JSON.stringify(value)}`);
  return value.split('+').reduce((sum, part) => {
    const ms = parseDurationMs(part.trim());
    if (ms === undefined) throw new Error(`not a time: ${value}`);
    return sum + ms;
  }, 0);
}

async function loadRules(rules: string | string[] | undefined): Promise<LoadResult> {
  const dirs = rules === undefined ? [shippedRulesDir()] : Array.isArray(rules) ? rules : [rules];
  if (dirs.length === 1) return loadRulesDir(dirs[0] as string);
  // Several directories load as one rule set: read each, then compile all the files together.
  const files: Array<{ path: string; text: string }> = [];
  for (const dir of dirs) {
    const one = await loadRulesDir(dir);
    if (!one.ok) return one;
    for (const path of one.rules.files) files.push({ path, text: readFileSync(path, 'utf8') });
  }
  return compileRuleFiles(files);
}

/** The golden's events, through the NDJSON reader as `vigil replay` reads a file. */
function eventsOf(golden: Golden): Event[] {
  const ndjson = (golden.events ?? []).map((e) => JSON.stringify({ ...e, at: time(e.at) })).join('\n');
  const parsed = parseEventsNdjson(ndjson);
  if (!parsed.ok) throw new Error(parsed.errors.join('\n'));
  return parsed.events;
}

/** The example rule sets of rules/examples/ each have theirs beside them, `NAME.golden.yaml`. */
const EXAMPLES = 'rules/examples';

const goldens = [
  ...readdirSync(DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(DIR, f)),
  ...readdirSync(EXAMPLES)
    .filter((f) => f.endsWith('.golden.yaml'))
    .sort()
    .map((f) => join(EXAMPLES, f)),
].map((path) => ({ file: path, golden: parse(readFileSync(path, 'utf8')) as Golden }));

describe('golden scenarios', () => {
  test('there are golden files', () => {
    expect(goldens.length).toBeGreaterThan(10);
  });

  for (const { file, golden } of goldens) {
    test(`${file}: ${golden.description}`, async () => {
      const loaded = await loadRules(golden.rules);
      if (golden.loadErrors) {
        expect(loaded.ok).toBe(false);
        const messages = loaded.ok ? [] : loaded.problems.map((p) => p.message);
        expect(messages).toEqual(golden.loadErrors);
        return;
      }
      if (!loaded.ok) throw new Error(loaded.problems.map(formatProblem).join('\n'));
      const only = golden.only;
      const rules = only
        ? { ...loaded.rules, scenarios: loaded.rules.scenarios.filter((s) => only.includes(s.id)) }
        : loaded.rules;
      if (only) expect(rules.scenarios.map((s) => s.id).sort()).toEqual([...only].sort());

      const events = eventsOf(golden);

      const profiles = new Map(Object.entries(golden.profiles ?? {}));
      const errors: ReplayError[] = [];
      const out = replay(rules, events, {
        gateway: 'golden',
        profiles,
        ...(golden.until !== undefined ? { untilMs: time(golden.until) } : {}),
        arbitrate: golden.arbitrate === true,
        onError: (e) => errors.push(e),
      });

      const expected = (golden.expect ?? []).map((a) =>
        a.eventAt === undefined ? a : { ...a, eventAt: time(a.eventAt) },
      );
      expect(out).toMatchObject(expected);
      // Through the arbiter, an expected action that names no `suppressed` reason must have been sent.
      if (golden.arbitrate === true) {
        const verdicts = (list: ReadonlyArray<{ suppressed?: unknown }>) =>
          list.map((a) => a.suppressed ?? 'sent');
        expect(verdicts(out)).toEqual(verdicts(expected));
      }
      for (const action of out) expect(action.gateway).toBe('golden');
      if (golden.errors) expect(errors).toMatchObject(golden.errors);
    });
  }

  test('replaying the same events twice gives the same action ids', async () => {
    const loaded = await loadRulesDir(shippedRulesDir());
    if (!loaded.ok) throw new Error('shipped rules do not load');
    const golden = goldens.find((g) => g.file === join(DIR, 'site-outage.yaml'))?.golden;
    if (!golden) throw new Error('site-outage.yaml golden missing');
    const events = eventsOf(golden);
    const profiles = new Map(Object.entries(golden.profiles ?? {}));
    const ids = (): string[] => replay(loaded.rules, events, { profiles }).map((a) => a.id);
    expect(ids().length).toBeGreaterThan(0);
    expect(ids()).toEqual(ids());
  });
});
