import { describe, expect, test } from 'vitest';
import {
  COARSE_POINTS,
  COARSE_STEP_MS,
  FINE_POINTS,
  FINE_STEP_MS,
  History,
  HistorySampler,
  merge,
  percentile,
  RecentActions,
  type HistoryPoint,
} from '../../src/dashboard/index.js';
import type { Action } from '../../src/shared/index.js';

// The dashboard's history on virtual time: points are added with the times a clock would give.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function point(over: Partial<HistoryPoint> = {}): HistoryPoint {
  return {
    eventsIn: 10,
    sent: 1,
    suppressed: 0,
    expired: 0,
    dropped: 0,
    p50Ms: 2,
    p99Ms: 9,
    outboxDepth: 0,
    outboxOldestMs: 0,
    uplink: 1,
    connected: 3,
    ...over,
  };
}

function action(n: number, eventAt: number, decidedAt: number): Action {
  return {
    id: `a${n}`,
    gateway: 'gw1',
    scenario: n % 2 === 0 ? 'overheat' : 'low-battery',
    action: 'inspect-device',
    actor: `dev-${n}`,
    priority: 70,
    category: 'maintenance',
    decidedAt,
    eventAt,
    payload: {},
  };
}

describe('History', () => {
  test('keeps the last hour of 5 s points and the last day of minutes, whatever it is fed', () => {
    const h = new History();
    const fineBytes = h.fine.bytes;
    const coarseBytes = h.coarse.bytes;
    // 25 hours of 5 s points, each carrying its own index as the event rate.
    const steps = (25 * HOUR) / FINE_STEP_MS;
    for (let i = 1; i <= steps; i++) h.add(i * FINE_STEP_MS, point({ eventsIn: i }));
    const now = steps * FINE_STEP_MS;

    expect(h.fine.size).toBe(FINE_POINTS);
    expect(h.coarse.size).toBe(COARSE_POINTS);
    // Rolled over, not grown: the memory is what was set at the start (about 200 kB in all).
    expect(h.fine.bytes).toBe(fineBytes);
    expect(h.coarse.bytes).toBe(coarseBytes);
    expect(fineBytes + coarseBytes).toBeLessThan(256 * 1024);

    const quarter = h.range(15 * 60_000, now);
    expect(quarter.stepMs).toBe(FINE_STEP_MS);
    expect(quarter.at).toHaveLength(180);
    expect(quarter.at.at(-1)).toBe(now);
    expect(quarter.series.eventsIn.at(-1)).toBe(steps);
    expect(quarter.series.eventsIn[0]).toBe(steps - 179);

    const hour = h.range(HOUR, now);
    expect(hour.at).toHaveLength(FINE_POINTS);
    expect(hour.at[0]).toBe(now - HOUR + FINE_STEP_MS);

    const day = h.range(DAY, now);
    expect(day.stepMs).toBe(COARSE_STEP_MS);
    // 1,439 closed minutes after the range's start, then the minute under way (here just closed: its last point came).
    expect(day.at[0]).toBe(now - DAY + COARSE_STEP_MS);
    expect(day.at.at(-1)).toBe(now);
    expect(day.at).toHaveLength(1_440);
    // A minute's rate is the mean of its twelve 5 s points: the last minute had points steps-11 … steps.
    expect(day.series.eventsIn.at(-1)).toBe(steps - 5.5);
    // Oldest first, a minute apart.
    expect(day.at.every((at, i) => i === 0 || at - (day.at[i - 1] ?? 0) === COARSE_STEP_MS)).toBe(true);
  });

  test('a page opened now gets what there is: a gap leaves no points, NaN is answered as null', () => {
    const h = new History();
    h.add(5_000, point({ p50Ms: NaN, p99Ms: NaN }));
    // The gateway was stopped for 10 minutes.
    h.add(605_000, point());
    const r = h.range(15 * 60_000, 610_000);
    expect(r.at).toEqual([5_000, 605_000]);
    expect(r.series.p50Ms).toEqual([null, 2]);
    expect(h.range(DAY, 610_000).at).toEqual([60_000, 605_000]);
  });

  test('a minute keeps the worst of its gauges and the highest p99', () => {
    const m = merge([
      point({ outboxDepth: 5, p99Ms: 30, p50Ms: 1, uplink: 1, connected: 4 }),
      point({ outboxDepth: 50, p99Ms: 80, p50Ms: 3, uplink: 0, connected: 2 }),
      point({ outboxDepth: 7, p99Ms: NaN, p50Ms: 2, uplink: 1, connected: 3 }),
    ]);
    expect(m).toMatchObject({ outboxDepth: 50, p99Ms: 80, p50Ms: 2, uplink: 0, connected: 3 });
    expect(percentile([], 0.5)).toBeNaN();
    expect(percentile([5, 1, 4, 2, 3], 0.99)).toBe(5);
  });
});

describe('HistorySampler', () => {
  test('rates from running totals, latency percentiles of the sent actions, outbox age and gauges', async () => {
    const recent = new RecentActions(100);
    let events = 0;
    let oldestAt: number | undefined;
    const sampler = new HistorySampler({
      eventsInTotal: () => events,
      recent,
      outboxDepth: () => (oldestAt === undefined ? 0 : 1),
      outboxOldestAt: () => oldestAt,
      uplink: () => 0,
      connected: () => 7,
    });
    await sampler.tick(1_000); // sets where the rates count from
    let n = 0;
    // Ten seconds of ticks: 20 events a second, one action sent a second with a latency of 1..10 ms.
    for (let t = 2_000; t <= 11_000; t += 1_000) {
      events += 20;
      n++;
      recent.decided(action(n, t - n, t), undefined);
      recent.decided(action(100 + n, t, t), 'cooldown');
      if (n === 3) recent.dropped(action(200, t, t), 'ttl');
      if (n === 7) recent.dropped(action(201, t, t), 'outbox-full');
      if (n === 6) oldestAt = t;
      await sampler.tick(t);
    }
    const r = sampler.history.range(HOUR, 11_000);
    expect(r.at).toEqual([5_000, 10_000]);
    // The first point covers 1 s … 5 s (4 s), the second 5 s … 10 s.
    expect(r.series.eventsIn).toEqual([20, 20]);
    expect(r.series.sent).toEqual([1, 1]);
    expect(r.series.suppressed).toEqual([1, 1]);
    expect(r.series.expired).toEqual([0.25, 0]);
    expect(r.series.dropped).toEqual([0, 0.2]);
    // Latencies 1..4 ms in the first point, 5..9 ms in the second.
    expect(r.series.p50Ms).toEqual([2, 7]);
    expect(r.series.p99Ms).toEqual([4, 9]);
    expect(r.series.outboxOldestMs).toEqual([0, 3_000]);
    expect(r.series.outboxDepth).toEqual([0, 1]);
    expect(r.series.uplink).toEqual([0, 0]);
    expect(r.series.connected).toEqual([7, 7]);
  });
});
