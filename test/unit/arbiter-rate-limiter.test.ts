import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { RateLimiter } from '../../src/actions/index.js';
import type { RateLimiterState } from '../../src/actions/index.js';

/** Sends `n` actions as early as the limiter allows, starting at `start`; returns when each went. */
function drain(limiter: RateLimiter, n: number, start = 0): number[] {
  const times: number[] = [];
  let now = start;
  while (times.length < n) {
    if (limiter.take(now)) {
      times.push(now);
      continue;
    }
    const next = limiter.nextAt(now);
    if (next <= now) throw new Error(`nextAt(${now}) = ${next}, yet take(${now}) failed`);
    now = next;
  }
  return times;
}

describe('RateLimiter (token bucket, 100/s as in rules/policy.yaml)', () => {
  test('a burst of up to count goes at once, then one every perMs / count', () => {
    const limiter = new RateLimiter({ count: 100, perMs: 1_000 });
    const times = drain(limiter, 1_000);
    expect(times.slice(0, 100)).toEqual(Array.from({ length: 100 }, () => 0));
    expect(times.slice(100, 103)).toEqual([10, 20, 30]);
    expect(times.at(-1)).toBe(9_000);
  });

  test('nextAt is exact: not a millisecond early, not a millisecond late', () => {
    const limiter = new RateLimiter({ count: 100, perMs: 1_000 });
    drain(limiter, 100);
    expect(limiter.nextAt(0)).toBe(10);
    expect(limiter.take(9)).toBe(false);
    expect(limiter.nextAt(9)).toBe(10);
    expect(limiter.take(10)).toBe(true);
    expect(limiter.nextAt(10)).toBe(20);
  });

  test('per-minute rates with a remainder: 7/m keeps the fractions, it does not round each wait up', () => {
    const limiter = new RateLimiter({ count: 7, perMs: 60_000 });
    // 60 000 / 7 = 8571.43 ms per action: waits of 8572, 8571, 8572 ms, never early.
    expect(drain(limiter, 10).slice(6)).toEqual([0, 8_572, 17_143, 25_715]);
  });

  test('a burst of 1 spaces every action by at least perMs / count', () => {
    const limiter = new RateLimiter({ count: 100, perMs: 1_000 }, undefined, 1);
    expect(drain(limiter, 4)).toEqual([0, 10, 20, 30]);
    expect(limiter.take(35)).toBe(false);
  });

  test('it waits, it never drops: nextAt is when the next one may go', () => {
    const limiter = new RateLimiter({ count: 2, perMs: 1_000 });
    expect([limiter.take(0), limiter.take(0), limiter.take(0)]).toEqual([true, true, false]);
    expect(limiter.nextAt(0)).toBe(500);
    expect(limiter.nextAt(100)).toBe(500);
    expect(limiter.nextAt(700)).toBe(700);
  });

  test('in any window of perMs at most burst + count go, and no more than count over a long run', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.constantFrom(1_000, 60_000),
        fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 300 }),
        (count, perMs, gaps) => {
          const limiter = new RateLimiter({ count, perMs });
          const sent: number[] = [];
          let now = 0;
          for (const gap of gaps) {
            now += gap;
            if (limiter.take(now)) sent.push(now);
          }
          for (const start of sent) {
            expect(sent.filter((t) => t >= start && t < start + perMs).length).toBeLessThanOrEqual(2 * count);
          }
          expect(sent.length).toBeLessThanOrEqual(count + Math.floor((now * count) / perMs));
        },
      ),
    );
  });

  test('its state is plain data: a limiter rebuilt from a JSON snapshot continues exactly', () => {
    const rate = { count: 100, perMs: 1_000 };
    const a = new RateLimiter(rate);
    drain(a, 150);
    const b = new RateLimiter(rate, JSON.parse(JSON.stringify(a.snapshot())) as RateLimiterState);
    expect(drain(b, 50, 500)).toEqual(drain(a, 50, 500));
  });

  test('a clock that steps back earns no tokens', () => {
    const limiter = new RateLimiter({ count: 1, perMs: 1_000 });
    expect(limiter.take(10_000)).toBe(true);
    expect(limiter.take(5_000)).toBe(false);
    expect(limiter.nextAt(5_000)).toBe(11_000);
    expect(limiter.take(10_999)).toBe(false);
    expect(limiter.take(11_000)).toBe(true);
  });
});
