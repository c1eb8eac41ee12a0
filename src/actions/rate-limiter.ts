import type { RatePolicy } from '../rules/policy.js';

/**
 * A token bucket as plain data. Credit is counted in token-milliseconds (one token = `perMs` of credit, and
 * `count` of credit accrues per millisecond), so that with whole-millisecond times every step is an exact
 * integer and `nextAt` is never off by a rounding error.
 */
export interface RateLimiterState {
  creditMs: number;
  atMs: number;
}

/**
 * Paces upstream actions to `rate` (`count` per `perMs`): `take` says whether one may go now, `nextAt` when the
 * next one may. A full bucket holds `burst` tokens (by default `count`), so after a quiet spell up to `burst`
 * go at once. It delays, it never drops.
 */
export class RateLimiter {
  private readonly rate: RatePolicy;
  private readonly capacity: number;
  private state: RateLimiterState;

  constructor(rate: RatePolicy, state?: RateLimiterState, burst: number = rate.count) {
    this.rate = rate;
    this.capacity = Math.max(1, burst) * rate.perMs;
    this.state = state ? { ...state } : { creditMs: this.capacity, atMs: Number.MIN_SAFE_INTEGER };
  }

  /** Takes one token if there is one at `now`. */
  take(now: number): boolean {
    this.refill(now);
    if (this.state.creditMs < this.rate.perMs) return false;
    this.state.creditMs -= this.rate.perMs;
    return true;
  }

  /** The earliest time at or after `now` when `take` will succeed. */
  nextAt(now: number): number {
    this.refill(now);
    const missing = this.rate.perMs - this.state.creditMs;
    return missing <= 0 ? now : this.state.atMs + Math.ceil(missing / this.rate.count);
  }

  snapshot(): RateLimiterState {
    return { ...this.state };
  }

  private refill(now: number): void {
    // Time that steps back (a clock correction) earns nothing, and does not rewind the bucket either.
    if (now <= this.state.atMs) return;
    const earned = (now - this.state.atMs) * this.rate.count;
    this.state = { creditMs: Math.min(this.capacity, this.state.creditMs + earned), atMs: now };
  }
}
