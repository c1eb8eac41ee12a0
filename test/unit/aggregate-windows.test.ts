import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { EngineState } from '../../src/engine/index.js';
import { calendarWindow, windowStart } from '../../src/engine/kinds/calendar.js';
import { compileRuleFiles } from '../../src/rules/index.js';
import type { RuleSet } from '../../src/rules/index.js';
import type { RuleProblem } from '../../src/shared/index.js';
import { Harness, rulesFrom } from './engine-harness.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** The temperature of the last 5 minutes against that of the last 24 hours. */
const SPIKE = `id: spike
when:
  event: telemetry
  windows:
    recent: 5m
    baseline: 24h
  aggregate:
    avg: avg(data.temp)
    n: count()
  having: recent.avg > 1.5 * baseline.avg && baseline.n >= 4
then:
  action: check
  payload:
    recent: recent.avg
    baseline: baseline.avg
`;

/** Counts a device's resets since midnight in Berlin. */
const DAILY = `id: resets-today
when:
  event: reset
  window: { every: 1d, at: "00:00", tz: Europe/Berlin }
  aggregate:
    n: count()
  having: n == 3
then:
  action: replace
  payload: { n: n }
`;

const SCHEMA = 'schema:\n  events:\n    telemetry:\n      temp: number\n    reset:\n';

function problems(files: Record<string, string>): RuleProblem[] {
  const result = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  return result.ok ? [] : result.problems;
}

const at = (iso: string): number => Date.parse(iso);

describe('named windows: parse and check', () => {
  test('with or without a schema, the scenario loads', () => {
    expect(problems({ 'x.yaml': SPIKE })).toEqual([]);
    expect(problems({ 'x.yaml': SPIKE, 'schema.yaml': SCHEMA })).toEqual([]);
    const plan = rulesFrom({ 'x.yaml': SPIKE }).scenarios[0]?.when;
    expect(plan).toMatchObject({
      kind: 'aggregate',
      windowMs: DAY,
      windows: [
        { name: 'recent', ms: 5 * MIN },
        { name: 'baseline', ms: DAY },
      ],
    });
  });

  test('an aggregate a window does not have is an error at its line and column, schema or not', () => {
    const text = SPIKE.replace('recent.avg > 1.5', 'recent.avgg > 1.5');
    for (const files of [{ 'x.yaml': text }, { 'x.yaml': text, 'schema.yaml': SCHEMA }]) {
      expect(problems(files)).toEqual([
        {
          file: 'x.yaml',
          line: 10,
          col: 18,
          message: 'having: recent.avgg: the window recent has no field "avgg"',
          hint: 'did you mean recent.avg?',
        },
      ]);
    }
  });

  test('without a schema, only the windows are checked: data stays anything, as in any rule without one', () => {
    const text = SPIKE.replace('event: telemetry', 'event: disconnected').replace(
      'baseline.n >= 4',
      'baseline.n >= 4 && data.code != 0',
    );
    expect(problems({ 'x.yaml': text })).toEqual([]);
  });

  test('a window compared with a string is a type error', () => {
    const text = SPIKE.replace('recent.avg > 1.5 * baseline.avg', 'recent.avg > "5"');
    expect(problems({ 'x.yaml': text })).toMatchObject([
      { line: 10, message: expect.stringMatching(/^having: types do not match/) as unknown },
    ]);
  });

  test('other mistakes, each at its place', () => {
    expect(problems({ 'x.yaml': SPIKE.replace('  windows:', '  window: 5m\n  windows:') })).toMatchObject([
      { line: 5, col: 3, message: 'when: give either "window" or "windows", not both' },
    ]);
    expect(problems({ 'x.yaml': SPIKE.replace('recent: 5m', 'data: 5m') })).toMatchObject([
      { line: 5, col: 5, message: expect.stringMatching(/^windows: "data" cannot name a window/) as unknown },
      // and what reads the window it did not bind
      { line: 14, col: 13, message: 'payload.recent: Unknown variable: recent' },
    ]);
    expect(problems({ 'x.yaml': SPIKE.replace('recent: 5m', 'recent: 5') })).toMatchObject([
      { line: 5, col: 13, message: 'windows.recent: 5 has no unit' },
    ]);
  });
});

describe('calendar windows: parse and check', () => {
  test.each([
    [
      'every: 5h',
      'every: 1d',
      'window.every: a calendar window is 1d, or whole hours that divide a day (1h, 6h, 12h)',
      20,
    ],
    [
      'at: "25:00"',
      'at: "00:00"',
      'window.at: expected a time of day such as "00:00" or "06:30", not "25:00"',
      28,
    ],
    [
      'tz: Mars/Olympus',
      'tz: Europe/Berlin',
      'window.tz: "Mars/Olympus" is not a time zone (such as Europe/Berlin or UTC)',
      41,
    ],
  ])('%s is refused at its place', (bad, good, message, col) => {
    expect(problems({ 'x.yaml': DAILY.replace(good, bad) })).toEqual([
      { file: 'x.yaml', line: 4, col, message },
    ]);
  });

  test('without at and tz, a day starts at midnight UTC', () => {
    const plan = rulesFrom({
      'x.yaml': DAILY.replace('{ every: 1d, at: "00:00", tz: Europe/Berlin }', '{ every: 1d }'),
    }).scenarios[0]?.when;
    expect(plan).toMatchObject({ calendar: { everyMs: DAY, atMs: 0, tz: 'UTC' } });
  });

  test('boundaries follow the wall clock through the changes of daylight saving time', () => {
    const berlin = calendarWindow(DAY, '00:00', 'Europe/Berlin');
    if (!berlin.ok) throw new Error(berlin.problem);
    expect(windowStart(berlin.window, at('2026-06-01T21:59:59.999Z'))).toBe(at('2026-05-31T22:00:00Z'));
    expect(windowStart(berlin.window, at('2026-06-01T22:00:00Z'))).toBe(at('2026-06-01T22:00:00Z'));
    // 29 March has 23 hours, 25 October 25.
    expect(windowStart(berlin.window, at('2026-03-29T21:59:00Z'))).toBe(at('2026-03-28T23:00:00Z'));
    expect(windowStart(berlin.window, at('2026-10-25T22:59:00Z'))).toBe(at('2026-10-24T22:00:00Z'));
    // 02:30 comes twice on 25 October: the day's window starts at the first.
    const late = calendarWindow(DAY, '02:30', 'Europe/Berlin');
    if (!late.ok) throw new Error(late.problem);
    expect(windowStart(late.window, at('2026-10-25T01:15:00Z'))).toBe(at('2026-10-25T00:30:00Z'));
    // and not at all on 29 March: it is read as 03:30 summer time.
    expect(windowStart(late.window, at('2026-03-29T01:20:00Z'))).toBe(at('2026-03-28T01:30:00Z'));
    expect(windowStart(late.window, at('2026-03-29T01:30:00Z'))).toBe(at('2026-03-29T01:30:00Z'));
    const sixHours = calendarWindow(6 * HOUR, '00:00', 'America/New_York');
    if (!sixHours.ok) throw new Error(sixHours.problem);
    expect(windowStart(sixHours.window, at('2026-07-01T15:00:00Z'))).toBe(at('2026-07-01T10:00:00Z'));
  });
});

describe('on virtual time', () => {
  test('recent against baseline: fires when the last 5 minutes run 1.5 times the day', () => {
    const h = new Harness(rulesFrom({ 'x.yaml': SPIKE }));
    for (let i = 0; i < 6; i++) h.feed({ actor: 'd', type: 'telemetry', at: i * HOUR, data: { temp: 20 } });
    expect(h.actions).toEqual([]);
    // The 5-minute window holds only this reading: 40 > 1.5 × the day's 160 / 7.
    h.feed({ actor: 'd', type: 'telemetry', at: 5 * HOUR + 10 * MIN, data: { temp: 40 } });
    expect(h.actions).toMatchObject([{ scenario: 'spike', payload: { recent: 40, baseline: 160 / 7 } }]);
    // A minute later the recent average is 30, and 30 > 1.5 × 180 / 8 = 33.75 no longer holds.
    h.feed({ actor: 'd', type: 'telemetry', at: 5 * HOUR + 11 * MIN, data: { temp: 20 } });
    expect(h.actions).toHaveLength(1);
  });

  test('a calendar day: the count starts again at midnight in Berlin, not 24 hours after the first', () => {
    const h = new Harness(rulesFrom({ 'x.yaml': DAILY }));
    // 23:30 and 23:50 in Berlin (summer time), then 00:10 the next day: two different days.
    h.feed({ actor: 'd', type: 'reset', at: at('2026-06-01T21:30:00Z') });
    h.feed({ actor: 'd', type: 'reset', at: at('2026-06-01T21:50:00Z') });
    h.feed({ actor: 'd', type: 'reset', at: at('2026-06-01T22:10:00Z') });
    expect(h.actions).toEqual([]);
    h.feed({ actor: 'd', type: 'reset', at: at('2026-06-02T08:00:00Z') });
    h.feed({ actor: 'd', type: 'reset', at: at('2026-06-02T21:59:59Z') });
    expect(h.actions).toMatchObject([{ scenario: 'resets-today', payload: { n: 3 } }]);
  });

  test('a group whose day has passed is pruned', () => {
    const h = new Harness(rulesFrom({ 'x.yaml': DAILY }));
    h.feed({ actor: 'd', type: 'reset', at: at('2026-06-01T21:30:00Z') });
    expect(h.engine.prune(at('2026-06-01T21:59:59Z'))).toBe(0);
    expect(h.engine.prune(at('2026-06-01T22:00:00Z'))).toBe(1);
  });
});

const readings = fc.array(
  fc.record({
    dt: fc.integer({ min: 0, max: 3 * HOUR }),
    actor: fc.constantFrom('a', 'b'),
    temp: fc.oneof(fc.integer({ min: -5, max: 60 }), fc.double({ min: -1e6, max: 1e6, noNaN: true })),
  }),
  { minLength: 1, maxLength: 60 },
);

function runSplit(
  rules: RuleSet,
  events: ReadonlyArray<{ dt: number; actor: string; type: string; temp: number }>,
  cut: number,
) {
  const start = at('2026-10-24T20:00:00Z');
  const steady = new Harness(rules);
  let split = new Harness(rules);
  let now = start;
  events.forEach((e, i) => {
    now += e.dt;
    const ev = { actor: e.actor, type: e.type, at: now, data: { temp: e.temp } };
    if (i === cut) {
      const state = JSON.parse(JSON.stringify(split.engine.snapshot())) as EngineState;
      const actions = split.actions;
      split = new Harness(rules).restore(state);
      split.actions.push(...actions);
    }
    steady.feed(ev);
    split.feed(ev);
  });
  return { steady: steady.actions, split: split.actions };
}

describe('restore', () => {
  const both = rulesFrom({
    'spike.yaml': SPIKE.replace('baseline.n >= 4', 'baseline.n >= 2'),
    'daily.yaml': `id: warm-day
when:
  event: telemetry
  windows:
    today: { every: 1d, at: "00:00", tz: Europe/Berlin }
    hour: 1h
  aggregate:
    sum: sum(data.temp)
    hi: max(data.temp)
    first: first(data.temp)
  having: today.sum > hour.sum + 50
then:
  action: note
  payload: { today: today.sum, hour: hour.sum, hi: today.hi, first: today.first }
`,
  });

  test('restored from a snapshot at any point, named and calendar windows decide exactly as if never stopped', () => {
    fc.assert(
      fc.property(readings, fc.nat(), (events, n) => {
        const typed = events.map((e) => ({ ...e, type: 'telemetry' }));
        const { steady, split } = runSplit(both, typed, n % events.length);
        expect(split).toEqual(steady);
      }),
      { numRuns: 150 },
    );
  });

  test('the property is not empty: the runs fire', () => {
    // From 22:00 in Berlin: 100 just after midnight, 0 over an hour later (the day holds more than the hour),
    // then a jump within 5 minutes.
    const events = [
      [130, 100],
      [70, 0],
      [10, 0],
      [1, 400],
    ].map(([dt = 0, temp = 0]) => ({ dt: dt * MIN, actor: 'a', type: 'telemetry', temp }));
    const { steady } = runSplit(both, events, 2);
    expect(steady.map((a) => a.scenario)).toContain('spike');
    expect(steady.map((a) => a.scenario)).toContain('warm-day');
  });
});
