import { describe, expect, test } from 'vitest';
import { explainDevice } from '../../src/dashboard/index.js';
import type { ClockRecord } from '../../src/runtime/index.js';
import { Harness, rulesFrom } from './engine-harness.js';

/**
 * Calendar windows on a wall clock that steps. The engine runs on gateway time; a clock record (applied by the
 * decision loop, as the journal holds it) tells it how far the wall clock is ahead, and "today since midnight in
 * Berlin" is the day the wall clock shows, not a day of the gateway's own timeline.
 */
const DAILY = `id: today
when:
  event: reset
  window: { every: 1d, at: "00:00", tz: Europe/Berlin }
  aggregate:
    n: count()
then:
  action: count
  payload: { n: n }
`;

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const at = (iso: string): number => Date.parse(iso);

function clock(gatewayMs: number, offsetMs: number, synced: boolean, stepMs = 0): ClockRecord {
  return { kind: 'clock', at: gatewayMs, offsetMs, synced, stepMs };
}

/** Feeds a reset at gateway time `t` and returns the count the action it decided carries. */
function countAt(h: Harness, t: number): unknown {
  const before = h.actions.length;
  h.feed({ actor: 'd1', type: 'reset', at: t });
  expect(h.actions).toHaveLength(before + 1);
  return h.actions[before]?.payload.n;
}

describe('a per-day calendar window on a wall clock that steps', () => {
  // Booted without a hardware clock: gateway time is a day of 1970.
  const G = (hhmm: string, day = 5) => at(`1970-01-0${day}T${hhmm}:00Z`);
  // NTP steps the wall clock at 22:00 gateway time to 02:00 in Berlin (CET) on 10 March 2026.
  const STEP = at('2026-03-10T01:00:00Z') - G('22:00');

  test('booted in 1970 and stepped 50 years forward, it counts the real day from the step on', () => {
    const h = new Harness(rulesFrom({ 'today.yaml': DAILY }));
    h.loop.onClock(clock(G('18:00'), 0, false));
    // Before the clock is synchronised: gateway time's day (1970-01-05 in Berlin).
    expect(countAt(h, G('19:30'))).toBe(1);
    expect(countAt(h, G('21:00'))).toBe(2);
    h.loop.onClock(clock(G('22:00'), STEP, true, STEP));
    // Midnight of 10 March in Berlin was at 20:00 gateway time: the reset at 19:30 was the day before.
    expect(countAt(h, G('22:10'))).toBe(2);
    expect(countAt(h, G('19:59', 6))).toBe(3);
    // Midnight of 11 March in Berlin (23:00Z) is 20:00 gateway time the next day, not 1970's midnight.
    expect(countAt(h, G('20:00', 6))).toBe(1);
    expect(countAt(h, G('23:30', 6))).toBe(2);
    const last = h.actions[h.actions.length - 1];
    expect(new Date(last?.decidedAt ?? 0).toISOString()).toBe('2026-03-11T02:30:00.000Z');
  });

  test('`vigil explain` shows the window the wall clock shows', () => {
    const h = new Harness(rulesFrom({ 'today.yaml': DAILY }));
    h.loop.onClock(clock(G('22:00'), STEP, true, STEP));
    countAt(h, G('22:10'));
    countAt(h, G('23:00'));
    const explain = (now: number) =>
      explainDevice(
        'd1',
        now,
        h.rules.scenarios,
        h.engine.liveState(),
        [],
        { policy: undefined, cooldownOf: () => undefined },
        h.loop.wall.syncedOffsetMs,
      ).scenarios[0]?.state;
    // 23:00 in Berlin on 10 March, gateway time 19:00 on 1970-01-06, when 1970-01-05 in Berlin was long over.
    expect(explain(G('19:00', 6))).toBe(
      'n 2 over the calendar window every 1d at 00:00 (Europe/Berlin) (2 events)',
    );
    expect(explain(G('20:00', 6))).toBe('nothing pending');
  });

  test('a housekeeping prune keeps a group whose events are in the real day though not in gateway time’s', () => {
    const h = new Harness(rulesFrom({ 'today.yaml': DAILY }));
    h.loop.onClock(clock(G('22:00'), STEP, true, STEP));
    expect(countAt(h, G('22:10'))).toBe(1);
    // 1970-01-05 ended in Berlin at 23:00Z gateway time; 10 March 2026 ends at 20:00 the next day.
    expect(h.loop.prune(G('19:00', 6))).toBe(0);
    expect(countAt(h, G('19:30', 6))).toBe(2);
    expect(h.loop.prune(G('20:30', 6))).toBe(1);
  });

  test('a wall clock that is no longer synchronised leaves the windows on the days of the last synchronised one', () => {
    const h = new Harness(rulesFrom({ 'today.yaml': DAILY }));
    h.loop.onClock(clock(G('22:00'), STEP, true, STEP));
    expect(countAt(h, G('22:10'))).toBe(1);
    // The clock is set back to 1970 (a reboot without a hardware clock): stamps say so, the days stay real.
    h.loop.onClock(clock(G('23:30'), 0, false, -STEP));
    expect(countAt(h, G('23:40'))).toBe(2);
    expect(h.actions[1]).toMatchObject({ decidedAt: G('23:40'), clockSynced: false });
    expect(countAt(h, G('20:00', 6))).toBe(1);
  });

  test('stepped a day back, the window starts at the midnight the wall clock shows', () => {
    // A synchronised gateway on Monday 30 March 2026, the day after Berlin's clocks went forward.
    const h = new Harness(rulesFrom({ 'today.yaml': DAILY }));
    expect(countAt(h, at('2026-03-29T22:30:00Z'))).toBe(1); // 00:30 on Monday in Berlin
    expect(countAt(h, at('2026-03-29T23:30:00Z'))).toBe(2);
    // The wall clock is stepped back a day, to Sunday 29 March: a 23-hour day whose midnight was an hour later, at
    // 23:00Z on the 28th (still winter time), which the wall clock reached at 23:00Z on the 29th gateway time.
    h.loop.onClock(clock(at('2026-03-30T08:00:00Z'), -DAY, true, -DAY));
    expect(countAt(h, at('2026-03-30T09:00:00Z'))).toBe(2);
    expect(h.actions[2]?.decidedAt).toBe(at('2026-03-29T09:00:00Z'));
    // The wall clock's next midnight (Monday, 22:00Z) is 22:00Z on the 30th gateway time.
    expect(countAt(h, at('2026-03-30T21:59:00Z'))).toBe(3);
    expect(countAt(h, at('2026-03-30T22:00:00Z'))).toBe(1);
  });
});
