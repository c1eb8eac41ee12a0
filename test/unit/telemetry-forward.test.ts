import { describe, expect, test } from 'vitest';
import { compileRuleFiles } from '../../src/rules/index.js';
import type { Telemetry } from '../../src/shared/index.js';
import { TelemetryLane } from '../../src/upstream/index.js';

const scenario = (then: string, when = 'event: telemetry') => `
id: s
when:
  ${when}
then:
${then}
`;

function compile(text: string) {
  return compileRuleFiles([{ path: 's.yaml', text }]);
}

function problems(text: string): string[] {
  const r = compile(text);
  return r.ok ? [] : r.problems.map((p) => p.message);
}

describe('then.forward', () => {
  test('the forms it takes', () => {
    const forms: Array<[string, unknown]> = [
      ['  forward: raw', { of: 'raw' }],
      ['  forward: { sample: 10 }', { of: 'raw', oneIn: 10 }],
      ['  forward: { every: 1m, type: temp }', { of: 'raw', everyMs: 60_000, type: 'temp' }],
    ];
    for (const [then, plan] of forms) {
      const r = compile(scenario(then));
      expect(r.ok && r.rules.scenarios[0]?.forward).toEqual(plan);
    }
    const agg = compile(
      scenario('  forward: aggregates', 'event: telemetry\n  window: 1m\n  aggregate:\n    n: count()'),
    );
    expect(agg.ok && agg.rules.scenarios[0]?.forward).toEqual({ of: 'aggregates' });
  });

  test('what it refuses, and why', () => {
    expect(problems(scenario('  forward: everything'))).toEqual([
      expect.stringContaining('"everything" is not what can be forwarded'),
    ]);
    expect(problems(scenario('  forward: aggregates'))).toEqual([expect.stringContaining('computes none')]);
    expect(problems(scenario('  forward: { sample: 1 }'))).toEqual([
      expect.stringContaining('forward.sample: expected a whole number from 2'),
    ]);
    expect(problems(scenario('  forward: { sample: 3, every: 1m }'))).toEqual([
      expect.stringContaining('either sample'),
    ]);
    expect(problems(scenario('  forward: { type: a/b }'))).toEqual([
      expect.stringContaining('cannot be a topic level'),
    ]);
  });
});

const input = (i: number, over: Partial<Telemetry> = {}): Telemetry => ({
  scenario: 's',
  type: 't',
  actor: 'd1',
  at: i * 1_000,
  data: { i },
  of: 'raw',
  ...over,
});

function drain(lane: TelemetryLane): number[] {
  const out: number[] = [];
  for (let m = lane.take(); m !== undefined; m = lane.take()) {
    out.push((JSON.parse(m.payload) as { data: { i: number } }).data.i);
  }
  return out;
}

describe('the telemetry lane', () => {
  test('full, it drops the oldest or the newest, as configured, and counts them', () => {
    for (const [drop, kept] of [
      ['oldest', [7, 8, 9]],
      ['newest', [0, 1, 2]],
    ] as const) {
      const lane = new TelemetryLane({ gatewayId: 'gw1', maxCount: 3, maxBytes: 1e6, drop });
      for (let i = 0; i < 10; i++) lane.offer(input(i));
      expect(lane.counts.dropped).toBe(7);
      expect(drain(lane)).toEqual(kept);
      expect(lane.bytes).toBe(0);
    }
  });

  test('its byte bound holds too', () => {
    const lane = new TelemetryLane({ gatewayId: 'gw1', maxCount: 1_000, maxBytes: 500, drop: 'oldest' });
    for (let i = 0; i < 100; i++) lane.offer(input(i));
    expect(lane.bytes).toBeLessThanOrEqual(500);
    expect(lane.size + lane.counts.dropped).toBe(100);
    expect(drain(lane).at(-1)).toBe(99);
  });

  test('sampling is per scenario and actor: 1 in N, and one per interval on gateway time', () => {
    const lane = new TelemetryLane({ gatewayId: 'gw1', maxCount: 1_000, maxBytes: 1e6, drop: 'oldest' });
    for (let i = 0; i < 7; i++) lane.offer(input(i, { oneIn: 3 }));
    expect(drain(lane)).toEqual([0, 3, 6]);
    for (let i = 0; i < 10; i++) lane.offer(input(i, { scenario: 'e', everyMs: 4_000 }));
    lane.offer(input(1, { scenario: 'e', actor: 'd2', everyMs: 4_000 }));
    expect(drain(lane)).toEqual([0, 4, 8, 1]);
    expect(lane.counts.sampledOut).toBe(4 + 7);
  });
});
