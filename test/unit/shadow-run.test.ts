import { describe, expect, test } from 'vitest';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import { VirtualRun } from '../../src/runtime/index.js';
import { ShadowRun } from '../../src/shadow/index.js';
import type { Candidate, Event } from '../../src/shared/index.js';

const COUNT = (n: number) => `id: three
priority: 50
category: alert
when:
  event: telemetry
  count: ${n}
  within: 1h
then:
  action: three
  to: [upstream]
`;
const QUIET = `id: quiet
priority: 50
category: alert
when:
  absent: any
  for: 10s
then:
  action: quiet
  to: [upstream]
`;

function rules(files: Record<string, string>): RuleSet {
  const result = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  if (!result.ok) throw new Error(result.problems.map((p) => p.message).join('\n'));
  return result.rules;
}

const ev = (actor: string, at: number): Event => ({
  actor,
  type: 'telemetry',
  at,
  data: {},
  source: 'device',
});

/** The live rules after two events of d1: two of three counted, a silence timer pending. */
function live(): VirtualRun {
  const run = VirtualRun.of(
    rules({ 'three.yaml': COUNT(3), 'quiet.yaml': QUIET }),
    { gateway: 'gw1' },
    () => undefined,
    {
      verdict: () => undefined,
    },
  );
  run.feed(ev('d1', 1_000));
  run.feed(ev('d1', 2_000));
  return run;
}

function shadowOf(
  files: Record<string, string>,
  maxQueued?: number,
): { shadow: ShadowRun; sent: Candidate[] } {
  const sent: Candidate[] = [];
  const shadow = new ShadowRun({
    rules: rules(files),
    live: live().rules,
    engine: { gateway: 'gw1' },
    profileOf: () => undefined,
    onSent: (c) => sent.push(c),
    ...(maxQueued !== undefined ? { maxQueued } : {}),
  });
  return { shadow, sent };
}

describe('ShadowRun', () => {
  test('starts from a copy of the live state for unchanged scenarios, and empty for changed ones', () => {
    const same = shadowOf({ 'three.yaml': COUNT(3), 'quiet.yaml': QUIET });
    same.shadow.offer({ kind: 'event', event: ev('d1', 3_000) }, undefined);
    same.shadow.flush();
    expect(same.sent.map((c) => c.action.scenario)).toEqual(['three']);

    const changed = shadowOf({ 'three.yaml': COUNT(4), 'quiet.yaml': QUIET });
    changed.shadow.offer({ kind: 'event', event: ev('d1', 3_000) }, undefined);
    changed.shadow.flush();
    expect(changed.sent).toEqual([]);
  });

  test('its timers fire on the time it is given, the live timers it copied included', () => {
    const { shadow, sent } = shadowOf({ 'quiet.yaml': QUIET });
    shadow.tick(11_999);
    expect(sent).toEqual([]);
    shadow.tick(12_000);
    expect(sent.map((c) => [c.action.scenario, c.action.eventAt])).toEqual([['quiet', 12_000]]);
  });

  test('takes only events and prunes, and drops what waits beyond its bound, counted', () => {
    const { shadow, sent } = shadowOf({ 'three.yaml': COUNT(1) }, 2);
    shadow.offer({ kind: 'timer', timer: 'x', at: 1, actor: 'd1' }, undefined);
    for (let i = 0; i < 4; i++) shadow.offer({ kind: 'event', event: ev(`d${i}`, 3_000 + i) }, undefined);
    expect(shadow.queued).toBe(2);
    expect(shadow.dropped).toBe(2);
    shadow.flush();
    expect(shadow.inputs).toBe(2);
    expect(sent.map((c) => c.action.actor)).toEqual(['d0', 'd1']);
    shadow.stop();
    shadow.offer({ kind: 'event', event: ev('d9', 9_000) }, undefined);
    expect(shadow.queued).toBe(0);
  });

  test('follows the live wall clock: its calendar windows count the days the live ones do', () => {
    const DAILY = `id: today
when:
  event: telemetry
  window: { every: 1d, at: "00:00", tz: UTC }
  aggregate: { n: count() }
then:
  action: today
  to: [upstream]
  payload: { n: n }
`;
    const HOUR = 3_600_000;
    const sent: Array<[string, unknown]> = [];
    const run = VirtualRun.of(rules({ 'today.yaml': DAILY }), { gateway: 'gw1' }, () => undefined, {
      verdict: (v) => void sent.push(['live', v.candidate.action.payload.n]),
    });
    // Gateway time is 20:00 on day 0; the wall clock was stepped to 02:00 on a later day.
    const step = 100 * 24 * HOUR + 6 * HOUR;
    run.loop.onClock({ kind: 'clock', at: 20 * HOUR, offsetMs: step, synced: true, stepMs: step });
    run.feed(ev('d1', 17 * HOUR)); // 23:00 the day before, by the wall clock
    const shadow = new ShadowRun({
      rules: rules({ 'today.yaml': DAILY }),
      live: run.rules,
      wall: run.loop.wall.state(),
      engine: { gateway: 'gw1' },
      profileOf: () => undefined,
      onSent: (c) => void sent.push(['shadow', c.action.payload.n]),
    });
    run.feed(ev('d1', 21 * HOUR));
    shadow.offer({ kind: 'event', event: ev('d1', 21 * HOUR) }, undefined);
    // A step applied live reaches the shadow as an input too: 3.5 hours back, so that the wall clock's midnight
    // comes at 21:30 gateway time, after the event at 21:00.
    const STEP_BACK = -3.5 * HOUR;
    const back = {
      kind: 'clock',
      at: 21 * HOUR,
      offsetMs: step + STEP_BACK,
      synced: true,
      stepMs: STEP_BACK,
    } as const;
    run.loop.onClock(back);
    shadow.offer(back, undefined);
    run.feed(ev('d1', 22 * HOUR));
    shadow.offer({ kind: 'event', event: ev('d1', 22 * HOUR) }, undefined);
    shadow.flush();
    expect(sent).toEqual([
      ['live', 1],
      ['live', 1],
      ['live', 1],
      ['shadow', 1],
      ['shadow', 1],
    ]);
  });
});
