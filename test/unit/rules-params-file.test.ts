import { describe, expect, test } from 'vitest';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import { replay } from '../../src/runtime/index.js';
import type { Event, Profile, RuleProblem } from '../../src/shared/index.js';

const TEMPLATE = `template: threshold
params:
  metric: { type: string }
  limit: { type: number }
  count: { type: integer, default: 1 }
  within: { type: duration, default: 1m }
when:
  event: telemetry
  where: data[params.metric] > params.limit
  count: \${count}
  within: \${within}
`;
const TEMP_HIGH = `id: temp-high
priority: 50
category: alert
use: threshold
with: { metric: temp, limit: 50 }
then:
  action: temp-high
  to: [upstream]
  payload:
    limit: params.limit
`;
const PLAIN = `id: plain
priority: 50
category: alert
when:
  event: telemetry
then:
  action: plain
  to: []
`;
const SCHEMA = `schema:
  events:
    telemetry: { temp: number }
  profile:
    site: string
    group: string
`;

function compile(files: Record<string, string>): RuleSet {
  const result = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  if (!result.ok) throw new Error(result.problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join('\n'));
  return result.rules;
}

function problems(files: Record<string, string>): RuleProblem[] {
  const result = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  return result.ok ? [] : result.problems;
}

const PROFILES = new Map<string, Profile>([
  ['berlin', { site: 'berlin-1', group: 'warm' }],
  ['paris', { site: 'paris-2' }],
  ['cold', { site: 'berlin-1', group: 'cold-rooms' }],
  ['none', {}],
]);

/** Which devices' temp-high fired at `temp`, with the limit it saw. */
function fired(rules: RuleSet, temp: number): Array<[string, unknown]> {
  const events: Event[] = [...PROFILES.keys(), 'unknown'].map((actor, i) => ({
    actor,
    type: 'telemetry',
    at: 1_000 + i,
    data: { temp },
    source: 'device',
  }));
  return replay(rules, events, { profiles: PROFILES })
    .filter((a) => a.scenario === 'temp-high')
    .map((a) => [a.actor, a.payload['limit']]);
}

describe('the parameter file', () => {
  test('overrides by profile field: each site decides by its own limit, later fields over earlier ones, defaults over with:', () => {
    const rules = compile({
      'templates/threshold.yaml': TEMPLATE,
      'temp-high.yaml': TEMP_HIGH,
      'params.yaml': `params:
  defaults:
    temp-high: { limit: 45 }
  site:
    berlin-1:
      temp-high: { limit: 30 }
  group:
    cold-rooms:
      temp-high: { limit: 8 }
`,
    });
    expect(fired(rules, 9)).toEqual([['cold', 8]]);
    expect(fired(rules, 35)).toEqual([
      ['berlin', 30],
      ['cold', 8],
    ]);
    expect(fired(rules, 46)).toEqual([
      ['berlin', 30],
      ['paris', 45],
      ['cold', 8],
      ['none', 45],
      ['unknown', 45],
    ]);
  });

  test('the fingerprint follows the parameter file: a changed override restarts the scenario, the same file keeps it', () => {
    const base = { 'templates/threshold.yaml': TEMPLATE, 'temp-high.yaml': TEMP_HIGH };
    const file = (limit: number) => `params:\n  site:\n    berlin-1:\n      temp-high: { limit: ${limit} }\n`;
    const fp = (files: Record<string, string>) => compile(files).scenarios[0]?.fingerprint;
    expect(fp({ ...base, 'params.yaml': file(30) })).toBe(fp({ ...base, 'params.yaml': file(30) }));
    expect(fp({ ...base, 'params.yaml': file(30) })).not.toBe(fp({ ...base, 'params.yaml': file(31) }));
    expect(fp({ ...base, 'params.yaml': file(30) })).not.toBe(fp(base));
  });

  test('every mistake is reported at its line: unknown scenario, no template, unknown or fixed parameter, wrong type, unknown profile field', () => {
    const found = problems({
      'schema.yaml': SCHEMA,
      'templates/threshold.yaml': TEMPLATE,
      'temp-high.yaml': TEMP_HIGH,
      'plain.yaml': PLAIN,
      'params.yaml': `params:
  defaults:
    temp-hgih: { limit: 45 }
    plain: { limit: 1 }
  site:
    berlin-1:
      temp-high: { limt: 30, count: 2, limit: warm }
  region:
    eu:
      temp-high: { limit: 1 }
`,
    });
    expect(found.map((p) => [p.file, p.line, p.message])).toEqual([
      [
        'params.yaml',
        3,
        expect.stringContaining('no scenario "temp-hgih" (scenarios with a template: temp-high)'),
      ],
      ['params.yaml', 4, expect.stringContaining('scenario plain uses no template')],
      ['params.yaml', 7, expect.stringContaining('template threshold has no parameter "limt"')],
      ['params.yaml', 7, expect.stringContaining('writes ${count} into the rule')],
      [
        'params.yaml',
        7,
        expect.stringContaining('params.site.berlin-1.temp-high.limit: expected a number, not'),
      ],
      [
        'params.yaml',
        8,
        expect.stringContaining('the schema\'s profile has no field "region" (fields: site, group)'),
      ],
    ]);
  });

  test('a second parameter file is a problem', () => {
    const found = problems({
      'templates/threshold.yaml': TEMPLATE,
      'temp-high.yaml': TEMP_HIGH,
      'a.yaml': 'params: {}\n',
      'b.yaml': 'params: {}\n',
    });
    expect(found.map((p) => p.message)).toEqual(['a second parameter file (the first is a.yaml)']);
  });
});
