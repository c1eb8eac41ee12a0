import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkRulesDir, compileRuleFiles, loadRulesDir, shippedRulesDir } from '../../src/rules/index.js';
import type { LoadResult, RuleSet, Scenario } from '../../src/rules/index.js';
import { formatProblem } from '../../src/shared/index.js';

const FIXTURES = 'test/fixtures/rules';

function loaded(result: LoadResult): RuleSet {
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  return result.rules;
}

function problems(files: Record<string, string>): string[] {
  const result = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  return result.ok ? [] : result.problems.map(formatProblem);
}

function one(text: string): Scenario {
  const s = loaded(compileRuleFiles([{ path: 'x.yaml', text }])).scenarios[0];
  if (!s) throw new Error('no scenario');
  return s;
}

describe('the shipped rules', () => {
  test('resolve from the source tree', () => {
    expect(existsSync(join(shippedRulesDir(), 'overheat.yaml'))).toBe(true);
  });

  test('all load as written, with their meaning', async () => {
    const rules = loaded(await loadRulesDir(shippedRulesDir()));
    const byId = new Map(rules.scenarios.map((s) => [s.id, s]));
    expect([...byId.keys()].sort()).toEqual([
      'customer-created',
      'device-offline',
      'hot-average',
      'humidity-high',
      'low-battery',
      'overheat',
      'overheat-sustained',
      'provisioned-not-registered',
      'site-outage',
    ]);
    expect(byId.get('overheat')).toMatchObject({
      priority: 70,
      category: 'maintenance',
      action: 'inspect-device',
      to: ['upstream', 'device'],
      when: { kind: 'trigger', events: ['telemetry'] },
    });
    expect(byId.get('overheat')?.payload.map((f) => [f.name, f.expr.source])).toEqual([
      ['temp', 'data.temp'],
      ['site', 'has(profile.site) ? profile.site : "unknown"'],
    ]);
    expect(byId.get('device-offline')).toMatchObject({
      priority: 90,
      category: 'support',
      when: { kind: 'silence', any: true, forMs: 300_000 },
      emit: { event: 'offline', data: [] },
    });
    expect(byId.get('provisioned-not-registered')?.when).toMatchObject({
      kind: 'sequence',
      steps: [
        { kind: 'event', event: 'provisioned' },
        { kind: 'absent', event: 'connected', withinMs: 86_400_000 },
      ],
    });
    expect(byId.get('overheat-sustained')?.when).toMatchObject({
      kind: 'count',
      count: 3,
      withinMs: 120_000,
    });
    expect(byId.get('hot-average')?.when).toMatchObject({
      kind: 'aggregate',
      windowMs: 600_000,
      aggregates: [
        { name: 'avgTemp', fn: 'avg' },
        { name: 'readings', fn: 'count' },
      ],
    });
    const outage = byId.get('site-outage');
    expect(outage?.by?.source).toBe('profile.site');
    expect(outage?.when).toMatchObject({ kind: 'count', count: 3, withinMs: 600_000, events: ['offline'] });
    expect(byId.get('customer-created')).toMatchObject({
      priority: 50,
      category: 'general',
      to: [],
      when: {
        kind: 'all',
        events: ['account-created', 'contract-created', 'device-assigned'],
        withinMs: 60_000,
      },
      emit: { event: 'customer-created' },
    });
    expect(byId.get('customer-created')?.action).toBeUndefined();
    expect(byId.get('humidity-high')).toMatchObject({
      priority: 30,
      action: 'check-enclosure',
      params: { metric: 'hum', limit: 85, count: 2, within: 300_000 },
      when: { kind: 'count', count: 2, withinMs: 300_000 },
    });
    expect(rules.policy).toBeDefined();
    expect(rules.files.some((f) => f.endsWith(join('templates', 'threshold.yaml')))).toBe(true);
  });

  test('the short-period copies load too', async () => {
    const rules = loaded(await loadRulesDir(join(FIXTURES, 'short')));
    expect(rules.scenarios.find((s) => s.id === 'device-offline')?.when).toMatchObject({ forMs: 3_000 });
    expect(rules.scenarios).toHaveLength(9);
  });
});

describe('rule files with problems', () => {
  test('every problem of every file is reported with its file and line', async () => {
    const dir = join(FIXTURES, 'broken');
    const lines = await checkRulesDir(dir);
    const at = (file: string, line: number, message: RegExp): RegExp =>
      new RegExp(`^${join(dir, file).replaceAll('/', '\\/')}:${line}:\\d+: ${message.source}`);
    const expected = [
      at('bad-cel.yaml', 4, /where: Unknown variable: dta/),
      at('bad-cel.yaml', 8, /payload\.temp: Unexpected token/),
      at('bad-duration.yaml', 4, /for: "5 minutes" is not a duration/),
      at('bad-keys.yaml', 2, /scenario: unknown key "descripton"/),
      at('bad-keys.yaml', 3, /priority: expected a whole number/),
      at('bad-keys.yaml', 6, /where: must be a condition/),
      at('bad-keys.yaml', 9, /to: "cloud" is not a destination/),
      at('duplicate.yaml', 4, /duplicate scenario id twice \(first defined at .*duplicate\.yaml:1\)/),
      at('syntax.yaml', 5, /.+/),
      at('template-use.yaml', 2, /use: unknown template "thresholds"/),
      at('template-use.yaml', 6, /template threshold: missing parameter "metric"/),
      at('template-use.yaml', 10, /template threshold: parameter "limit" must be a number, not "high"/),
    ];
    expect(lines).toHaveLength(expected.length);
    lines.forEach((line, i) => expect(line).toMatch(expected[i] as RegExp));
    for (const line of lines) expect(line).not.toMatch(/\n|at .*\.ts:\d+/);
  });

  test('emit cycles are rejected with the cycle spelled out', async () => {
    const lines = await checkRulesDir(join(FIXTURES, 'cycle'));
    expect(lines).toEqual([
      `${join(FIXTURES, 'cycle', 'echo.yaml')}:6: emit cycle: echo -> echo`,
      `${join(FIXTURES, 'cycle', 'ping.yaml')}:6: emit cycle: ping -> pong -> ping`,
    ]);
  });

  test('a longer cycle is spelled in emit order', () => {
    const s = (id: string, on: string, emits: string): string =>
      `id: ${id}\nwhen: { event: ${on} }\nthen: { emit: ${emits} }\n`;
    expect(
      problems({ 'a.yaml': s('a', 'x', 'y'), 'b.yaml': s('b', 'y', 'z'), 'c.yaml': s('c', 'z', 'x') }),
    ).toEqual(['a.yaml:3: emit cycle: a -> b -> c -> a']);
    // A chain that ends is fine.
    expect(problems({ 'a.yaml': s('a', 'x', 'y'), 'b.yaml': s('b', 'y', 'z') })).toEqual([]);
  });

  test('a missing directory is one problem, not an exception', async () => {
    expect(await checkRulesDir(join(FIXTURES, 'no-such-dir'))).toEqual([
      `${join(FIXTURES, 'no-such-dir')}:0: cannot read the rules directory (ENOENT)`,
    ]);
  });

  test.each([
    ['no id', 'when: { event: a }\nthen: { action: b }', /x\.yaml:1:\d+: scenario: "id" is required/],
    ['bad id', 'id: "a b"\nwhen: { event: a }\nthen: { action: b }', /x\.yaml:1:\d+: id: "a b" may use only/],
    ['no when', 'id: a\nthen: { action: b }', /"when" is required/],
    ['no then', 'id: a\nwhen: { event: a }', /"then" is required/],
    [
      'two kinds',
      'id: a\nwhen: { event: a, absent: b, for: 1m }\nthen: { action: b }',
      /give exactly one of/,
    ],
    ['no kind', 'id: a\nwhen: { where: "true" }\nthen: { action: b }', /give exactly one of/],
    ['any as an event', 'id: a\nwhen: { event: any }\nthen: { action: b }', /"any" is only meaningful/],
    ['absent without for', 'id: a\nwhen: { absent: any }\nthen: { action: b }', /"absent" needs "for"/],
    [
      'zero duration',
      'id: a\nwhen: { absent: any, for: 0s }\nthen: { action: b }',
      /for: must be longer than 0/,
    ],
    [
      'count of 0',
      'id: a\nwhen: { event: a, count: 0 }\nthen: { action: b }',
      /count: expected a whole number from 1/,
    ],
    ['within alone', 'id: a\nwhen: { event: a, within: 1m }\nthen: { action: b }', /"event" needs "count"/],
    [
      'count with window',
      'id: a\nwhen: { event: a, count: 2, window: 1m, aggregate: { n: count() } }\nthen: { action: b }',
      /either count\/within\/distinct or window/,
    ],
    [
      'where with absent',
      'id: a\nwhen: { absent: a, for: 1m, where: "true" }\nthen: { action: b }',
      /"where" does not go with "absent"/,
    ],
    [
      'unknown aggregate',
      'id: a\nwhen: { event: a, window: 1m, aggregate: { m: median(data.x) } }\nthen: { action: b }',
      /aggregate\.m: expected one of/,
    ],
    [
      'count(x)',
      'id: a\nwhen: { event: a, window: 1m, aggregate: { n: count(data.x) } }\nthen: { action: b }',
      /count\(\) takes no argument/,
    ],
    [
      'aggregate named data',
      'id: a\nwhen: { event: a, window: 1m, aggregate: { data: count() } }\nthen: { action: b }',
      /cannot name an aggregate/,
    ],
    [
      'having on unknown name',
      'id: a\nwhen: { event: a, window: 1m, aggregate: { n: count() }, having: m > 1 }\nthen: { action: b }',
      /having: Unknown variable: m/,
    ],
    [
      'last in where',
      'id: a\nwhen: { event: a, where: last.at > 0 }\nthen: { action: b }',
      /where: Unknown variable: last/,
    ],
    [
      'all of one',
      'id: a\nwhen: { all: [a], within: 1m }\nthen: { action: b }',
      /list at least 2 event types/,
    ],
    [
      'all twice the same',
      'id: a\nwhen: { all: [a, a], within: 1m }\nthen: { action: b }',
      /"a" is listed twice/,
    ],
    ['all without within', 'id: a\nwhen: { all: [a, b] }\nthen: { action: b }', /"all" needs "within"/],
    [
      'one-step sequence',
      'id: a\nwhen: { sequence: [{ event: a }] }\nthen: { action: b }',
      /at least two steps/,
    ],
    [
      'sequence starting absent',
      'id: a\nwhen: { sequence: [{ absent: a, within: 1m }, { event: b }] }\nthen: { action: b }',
      /cannot start with an absent step/,
    ],
    [
      'absent step without within',
      'id: a\nwhen: { sequence: [{ event: a }, { absent: b }] }\nthen: { action: b }',
      /absent step needs "within"/,
    ],
    [
      'first step with within',
      'id: a\nwhen: { sequence: [{ event: a, within: 1m }, { event: b }] }\nthen: { action: b }',
      /first step has no "within"/,
    ],
    [
      'then without action or emit',
      'id: a\nwhen: { event: a }\nthen: { payload: { x: "1" } }',
      /give an "action", an "emit", a "forward", or more than one/,
    ],
    [
      'to without action',
      'id: a\nwhen: { event: a }\nthen: { emit: b, to: [upstream] }',
      /to: there is no action/,
    ],
    [
      'emit map without event',
      'id: a\nwhen: { event: a }\nthen: { emit: { data: { x: "1" } } }',
      /emit: "event" is required/,
    ],
    ['action with a slash', 'id: a\nwhen: { event: a }\nthen: { action: "a/b" }', /cannot be a command name/],
    [
      'priority out of range',
      'id: a\npriority: 101\nwhen: { event: a }\nthen: { action: b }',
      /x\.yaml:2:\d+: priority: expected a whole number from 0 to 100/,
    ],
    [
      'with without use',
      'id: a\nwith: { x: 1 }\nwhen: { event: a }\nthen: { action: b }',
      /only a scenario that uses a template/,
    ],
  ])('%s', (_name, text, message) => {
    const lines = problems({ 'x.yaml': text });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).toMatch(message);
  });

  test('a list file reports each broken scenario and keeps line numbers', () => {
    const text = [
      '- id: ok',
      '  when: { event: a }',
      '  then: { action: b }',
      '- id: bad',
      '  when: { event: a, count: -1 }',
      '  then: { action: b }',
    ].join('\n');
    expect(problems({ 'list.yaml': text })).toEqual([
      'list.yaml:5:28: count: expected a whole number from 1 to 100000, not -1',
    ]);
  });

  test('two policy files are refused', () => {
    const policy = 'policy:\n  cooldown: 10m\n';
    expect(problems({ 'p1.yaml': policy, 'p2.yaml': policy })).toEqual([
      'p2.yaml:1:1: a second policy file (the first is p1.yaml)',
    ]);
  });

  test('a problem in a policy file is reported by the policy parser with its line', () => {
    expect(problems({ 'policy.yaml': 'policy:\n  cooldown: soon\n' }).join('\n')).toMatch(
      /^policy\.yaml:2:\d+: /,
    );
  });

  test('an empty file is no scenario and no problem', () => {
    expect(loaded(compileRuleFiles([{ path: 'empty.yaml', text: '# nothing yet\n' }])).scenarios).toEqual([]);
  });
});

describe('templates', () => {
  const template = [
    'template: above',
    'params:',
    '  metric: { type: string }',
    '  limit: { type: number }',
    '  times: { type: integer, default: 1 }',
    '  period: { type: duration, default: 1m }',
    'priority: 20',
    'when:',
    '  event: telemetry',
    '  where: data[params.metric] > params.limit',
    '  count: ${times}',
    '  within: ${period}',
  ].join('\n');

  test('defaults fill the parameters not given; the scenario overrides the template', () => {
    const rules = loaded(
      compileRuleFiles([
        { path: 'templates/above.yaml', text: template },
        {
          path: 'hum.yaml',
          text: 'id: hum\nuse: above\nwith: { metric: hum, limit: 85 }\nthen: { action: vent }',
        },
        {
          path: 'temp.yaml',
          text: 'id: temp\npriority: 60\nuse: above\nwith: { metric: temp, limit: 70, times: 3, period: 30s }\nthen: { action: cool }',
        },
      ]),
    );
    const [hum, temp] = rules.scenarios;
    expect(hum).toMatchObject({
      priority: 20,
      params: { metric: 'hum', limit: 85, times: 1, period: 60_000 },
    });
    expect(hum?.when).toMatchObject({ kind: 'count', count: 1, withinMs: 60_000 });
    expect(temp).toMatchObject({ priority: 60, params: { times: 3, period: 30_000 } });
    expect(temp?.when).toMatchObject({ kind: 'count', count: 3, withinMs: 30_000 });
  });

  test('a parameter of the wrong type, an unknown one, a missing one: each named, in the using file', () => {
    const lines = problems({
      'templates/above.yaml': template,
      'use.yaml': [
        '- id: a',
        '  use: above',
        '  with: { metric: 3, limit: 85 }',
        '  then: { action: x }',
        '- id: b',
        '  use: above',
        '  with: { metric: hum, limit: 85, times: 2.5, colour: red }',
        '  then: { action: x }',
        '- id: c',
        '  use: above',
        '  then: { action: x }',
        '- id: d',
        '  use: above',
        '  with: { metric: hum, limit: 85, period: soon }',
        '  then: { action: x }',
      ].join('\n'),
    });
    expect(lines).toEqual([
      'use.yaml:3:19: template above: parameter "metric" must be a string, not 3',
      'use.yaml:7:47: template above has no parameter "colour" (its parameters: metric, limit, times, period)',
      'use.yaml:7:42: template above: parameter "times" must be a whole number, not 2.5',
      'use.yaml:10:3: template above: missing parameter "metric" (string)',
      'use.yaml:10:3: template above: missing parameter "limit" (number)',
      'use.yaml:14:43: template above: parameter "period" must be a duration with its unit, such as 30s, 5m or 1h, not "soon"',
    ]);
  });

  test('a problem in a template body points at the template and names the scenario using it', () => {
    const broken = template.replace('data[params.metric] > params.limit', 'data[params.metric] >');
    const lines = problems({
      'templates/above.yaml': broken,
      'hum.yaml': 'id: hum\nuse: above\nwith: { metric: hum, limit: 85 }\nthen: { action: vent }',
    });
    expect(lines).toEqual([
      expect.stringMatching(
        /^templates\/above\.yaml:10:\d+: where: .*\(template above, used by hum in hum\.yaml:2\)$/,
      ) as unknown,
    ]);
  });

  test('a template checks its own parameters and references', () => {
    const lines = problems({
      't.yaml': [
        'template: t',
        'params:',
        '  n: { type: float }',
        '  m: { type: number, default: many }',
        'when:',
        '  event: a',
        '  count: ${k}',
      ].join('\n'),
    });
    expect(lines).toEqual([
      't.yaml:3:14: params.n.type: expected one of string, number, integer, boolean, duration, not "float"',
      't.yaml:4:31: params.m.default: expected a number, not "many"',
      't.yaml:7:10: template t: ${k} is not one of its params',
    ]);
  });

  test('a scenario cannot both use a template and give its own when', () => {
    const lines = problems({
      'templates/above.yaml': template,
      'x.yaml': 'id: x\nuse: above\nwith: { metric: hum, limit: 1 }\nwhen: { event: a }\nthen: { action: y }',
    });
    expect(lines).toEqual(['x.yaml:4:1: when: scenario x uses template above, which gives "when"']);
  });
});

describe('fingerprints', () => {
  const base =
    'id: hot\npriority: 10\nwhen:\n  event: telemetry\n  where: data.temp > 80\n  count: 3\n  within: 2m\nthen:\n  action: fan\n';

  test('are stable, and ignore what does not change the state (priority, action, payload)', () => {
    const a = one(base);
    expect(one(base).fingerprint).toBe(a.fingerprint);
    expect(
      one(base.replace('priority: 10', 'priority: 90').replace('action: fan', 'action: cool')).fingerprint,
    ).toBe(a.fingerprint);
  });

  test('change with the condition, the period or the grouping', () => {
    const a = one(base).fingerprint;
    expect(one(base.replace('> 80', '> 81')).fingerprint).not.toBe(a);
    expect(one(base.replace('within: 2m', 'within: 3m')).fingerprint).not.toBe(a);
    expect(one(base.replace('count: 3', 'count: 3\n  by: profile.site')).fingerprint).not.toBe(a);
  });
});
