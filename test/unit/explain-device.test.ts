import { describe, expect, test } from 'vitest';
import { DeviceDecisions, explainDevice, RecentActions } from '../../src/dashboard/index.js';
import type { Policy } from '../../src/rules/index.js';
import { VirtualRun } from '../../src/runtime/replay.js';
import type { Action, Event } from '../../src/shared/index.js';
import { rulesFrom } from './engine-harness.js';

const MIN = 60_000;

const RULES = {
  'doors.yaml': `id: doors
when: { event: door-open, count: 5, within: 10m }
then: { action: check }
`,
  'warm.yaml': `id: warm
when:
  event: telemetry
  window: 5m
  aggregate: { avgTemp: avg(data.temp), n: count() }
  having: avgTemp > 70
then: { action: cool }
`,
  'quiet.yaml': `id: quiet
when: { absent: heartbeat, for: 30m }
then: { action: ping }
`,
  'onboard.yaml': `id: onboard
when: { all: [paid, shipped], within: 1h }
then: { action: welcome }
`,
  'visit.yaml': `id: visit
when:
  sequence:
    - event: arrived
    - absent: left
      within: 20m
then: { action: stuck }
`,
};

function ev(type: string, at: number, data: Record<string, unknown> = {}): Event {
  return { actor: 'd1', type, at, data, source: 'device' };
}

describe('each kind explains where a group stands, at the time asked', () => {
  test('count, window average, silence deadline, all and sequence', () => {
    const rules = rulesFrom(RULES);
    const run = VirtualRun.of(rules, { gateway: 'g' }, () => undefined, { verdict: () => undefined });
    for (const e of [
      ev('door-open', 0),
      ev('door-open', 1 * MIN),
      ev('door-open', 2 * MIN),
      ev('telemetry', 1 * MIN, { temp: 60 }),
      ev('telemetry', 3 * MIN, { temp: 62.5 }),
      ev('telemetry', 4 * MIN, { temp: 61.1 }),
      ev('heartbeat', 4 * MIN),
      ev('paid', 4 * MIN),
      ev('arrived', 4 * MIN),
    ])
      run.feed(e);
    const explain = (now: number) =>
      explainDevice('d1', now, rules.scenarios, run.rules.engine.liveState(), [], {
        policy: undefined,
        cooldownOf: () => undefined,
      });
    const at = (ms: number) => new Date(ms).toISOString();
    const state = (now: number) =>
      Object.fromEntries(explain(now).scenarios.map((s) => [s.scenario, s.state]));

    expect(state(5 * MIN)).toEqual({
      doors: `count 3 of 5 within 10m; the oldest leaves the window at ${at(10 * MIN)}`,
      warm: 'avgTemp 61.2, n 3 over the 5m window (3 events); fires when avgTemp > 70',
      quiet: `waiting for heartbeat until ${at(34 * MIN)} (silence deadline; the last came at ${at(4 * MIN)})`,
      onboard: `1 of 2 (paid); waiting for shipped until ${at(64 * MIN)}`,
      visit: `step 2 of 2: no left until ${at(24 * MIN)}, then it fires`,
    });
    const warm = explain(5 * MIN).scenarios.find((s) => s.scenario === 'warm');
    expect(warm?.groups[0]).toMatchObject({
      group: 'd1',
      figures: { avgTemp: 61.2, n: 3 },
      sinceAt: 1 * MIN,
    });
    // Later, what has left the windows no longer counts: the first door opening and the first reading.
    const later = state(10 * MIN + 1);
    expect(later['doors']).toMatch(/^count 2 of 5 within 10m/);
    expect(later['warm']).toBe('nothing pending');
    expect(state(6 * MIN + 1)['warm']).toBe(
      'avgTemp 61.8, n 2 over the 5m window (2 events); fires when avgTemp > 70',
    );
    expect(state(65 * MIN)['onboard']).toBe('nothing pending');
  });
});

function action(scenario: string, category: string, decidedAt: number): Action {
  return {
    id: `${scenario}-${decidedAt}`,
    gateway: 'g',
    scenario,
    action: scenario,
    actor: 'd1',
    priority: 1,
    category,
    decidedAt,
    eventAt: decidedAt,
    payload: {},
  };
}

describe('the reasons of a device’s decisions, in words', () => {
  test('contact cap until the oldest counted leaves, exclusivity since the support action, cooldown, expiry', () => {
    const recent = new RecentActions();
    recent.decided(action('offer', 'offer', 0), undefined);
    recent.decided(action('offer', 'offer', 10 * MIN), 'contact');
    recent.decided(action('call', 'support', 20 * MIN), undefined);
    recent.decided(action('offer', 'offer', 30 * MIN), 'exclusive:support');
    recent.decided(action('call', 'support', 31 * MIN), 'cooldown');
    recent.dropped(action('offer', 'offer', 40 * MIN), 'ttl');
    const policy: Policy = {
      contact: [{ max: 1, perMs: 24 * 60 * MIN, except: ['support'] }],
      exclusive: [{ active: 'support', forMs: 120 * MIN, suppress: ['offer'] }],
      ttlMs: new Map([['offer', 60 * MIN]]),
    };
    const rules = rulesFrom({
      'o.yaml': 'id: offer\nwhen: { event: promo }\nthen: { action: offer }\n',
      'c.yaml': 'id: call\nwhen: { event: ticket }\nthen: { action: call }\n',
    });
    const run = VirtualRun.of(rules, { gateway: 'g' }, () => undefined, { verdict: () => undefined });
    const explained = explainDevice(
      'd1',
      45 * MIN,
      rules.scenarios,
      run.rules.engine.liveState(),
      recent.byDevice.of('d1'),
      { policy, cooldownOf: (s) => (s === 'call' ? 15 * MIN : undefined) },
    );
    const at = (ms: number) => new Date(ms).toISOString();
    expect(explained.scenarios[0]?.decisions.map((d) => [d.verdict, d.why])).toEqual([
      ['expired', 'expired: waited in the outbox past the offer ttl (1h)'],
      [
        'suppressed',
        `exclusive because of a support action at ${at(20 * MIN)} (call): no offer for 2h, until ${at(140 * MIN)}`,
      ],
      ['suppressed', `suppressed by the contact cap 1 per 24h until ${at(24 * 60 * MIN)}`],
      ['sent', 'sent'],
    ]);
    expect(explained.scenarios[1]?.decisions[0]).toMatchObject({
      verdict: 'suppressed',
      reason: 'cooldown',
      untilAt: 35 * MIN,
      why: `suppressed by the cooldown of call (15m): sent at ${at(20 * MIN)}, again from ${at(35 * MIN)}`,
    });
  });

  test('the decisions kept are bounded per device and in devices', () => {
    const kept = new DeviceDecisions(2, 2);
    const entry = (actor: string, seq: number) => ({
      seq,
      verdict: 'sent' as const,
      action: { ...action('s', 'c', seq), actor },
    });
    for (let i = 0; i < 5; i++) kept.add(entry('a', i));
    kept.add(entry('b', 5));
    expect(kept.of('a').map((e) => e.seq)).toEqual([3, 4]);
    kept.add(entry('c', 6)); // a was decided longest ago: it goes
    expect(kept.of('a')).toEqual([]);
    expect(kept.of('b')).toHaveLength(1);
    expect(kept.of('c')).toHaveLength(1);
  });
});
