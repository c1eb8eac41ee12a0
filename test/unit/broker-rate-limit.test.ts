import { describe, expect, test } from 'vitest';
import { ConnectThrottle, PublishThrottle, type RateVerdict } from '../../src/broker/index.js';

const rate = { perSecond: 10, burst: 20, disconnectAfterMs: 5_000 };

/** Publishes `count` times, evenly over [fromMs, toMs), and tallies the verdicts. */
function publish(
  t: PublishThrottle,
  fromMs: number,
  toMs: number,
  count: number,
): Record<RateVerdict, number> {
  const tally: Record<RateVerdict, number> = { pass: 0, drop: 0, disconnect: 0 };
  for (let i = 0; i < count; i++) tally[t.take(fromMs + ((toMs - fromMs) * i) / count)]++;
  return tally;
}

describe('publish rate per device', () => {
  test('a burst up to the bucket size passes at once, the rest of it is dropped', () => {
    const t = new PublishThrottle(rate, 0);
    expect(publish(t, 0, 1, 30)).toEqual({ pass: 20, drop: 10, disconnect: 0 });
  });

  test('at the sustained rate nothing is ever dropped', () => {
    const t = new PublishThrottle(rate, 0);
    expect(publish(t, 0, 60_000, 600)).toEqual({ pass: 600, drop: 0, disconnect: 0 });
  });

  test('a device at twice its rate gets its rate through, and is disconnected after 5 s of being throttled', () => {
    const t = new PublishThrottle(rate, 0);
    // 20/s: the bucket of 20 empties after 2 s (10/s net), then half is dropped.
    const early = publish(t, 0, 6_900, 138);
    expect(early.disconnect).toBe(0);
    expect(early.pass).toBeGreaterThanOrEqual(20 + 68);
    expect(early.pass).toBeLessThanOrEqual(20 + 70);
    expect(early.drop).toBe(138 - early.pass);
    expect(publish(t, 6_900, 8_000, 22).disconnect).toBeGreaterThan(0);
  });

  test('bursts with quiet spells between them are throttled but never disconnected', () => {
    const t = new PublishThrottle(rate, 0);
    let disconnects = 0;
    let drops = 0;
    // Every 3 s, 40 messages within 100 ms: half dropped each time, for a minute.
    for (let start = 0; start < 60_000; start += 3_000) {
      const tally = publish(t, start, start + 100, 40);
      disconnects += tally.disconnect;
      drops += tally.drop;
    }
    expect(drops).toBeGreaterThan(0);
    expect(disconnects).toBe(0);
  });

  test('a rate of 0 means no limit', () => {
    const t = new PublishThrottle({ ...rate, perSecond: 0 }, 0);
    expect(publish(t, 0, 10, 10_000)).toEqual({ pass: 10_000, drop: 0, disconnect: 0 });
  });
});

describe('refused connects from one address', () => {
  const opts = {
    freeFailures: 3,
    baseDelayMs: 100,
    maxDelayMs: 1_000,
    forgetAfterMs: 60_000,
    maxAddresses: 3,
  };

  test('are answered at once up to the free ones, then after a delay that doubles up to the cap', () => {
    const c = new ConnectThrottle(opts);
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      delays.push(c.delayFor('10.0.0.1', i));
      c.failed('10.0.0.1', i);
    }
    expect(delays).toEqual([0, 0, 0, 100, 200, 400, 800, 1_000, 1_000]);
    expect(c.delayFor('10.0.0.2', 10)).toBe(0);
  });

  test('a success, or a quiet hour, starts the address afresh', () => {
    const c = new ConnectThrottle(opts);
    for (let i = 0; i < 5; i++) c.failed('10.0.0.1', 0);
    expect(c.delayFor('10.0.0.1', 1)).toBe(400);
    c.succeeded('10.0.0.1');
    expect(c.delayFor('10.0.0.1', 2)).toBe(0);
    for (let i = 0; i < 5; i++) c.failed('10.0.0.1', 0);
    expect(c.delayFor('10.0.0.1', 59_999)).toBe(400);
    expect(c.delayFor('10.0.0.1', 60_000)).toBe(0);
  });

  test('remembers a bounded number of addresses, forgetting the stalest first', () => {
    const c = new ConnectThrottle(opts);
    for (const host of ['a', 'b', 'c', 'd']) for (let i = 0; i < 3; i++) c.failed(host, 0);
    expect(c.size).toBe(3);
    expect(c.delayFor('a', 1)).toBe(0);
    expect(c.delayFor('d', 1)).toBe(100);
  });
});
