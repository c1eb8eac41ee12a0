/** A device's publish budget. */
export interface PublishRate {
  /** Sustained publishes per second; 0 turns the limit off. */
  perSecond: number;
  /** Publishes allowed in a burst on top of the sustained rate (the bucket's size). */
  burst: number;
  /** A device throttled without a break for this long is disconnected. */
  disconnectAfterMs: number;
}

/** `pass` go on, `drop` over the rate (acknowledged, not delivered), `disconnect` a persistent offender. */
export type RateVerdict = 'pass' | 'drop' | 'disconnect';

/**
 * Drops within this long of the previous one continue a throttled stretch; a longer quiet spell ends
 * it, so a device that bursts now and then is never disconnected for it.
 */
const STRETCH_GAP_MS = 1_000;

/**
 * A token bucket per connection, on time passed in (ms, any monotonic origin). A device that keeps
 * publishing over its rate for `disconnectAfterMs` without a break is told to go: dropping its
 * messages costs the gateway little, but it is broken or hostile and the counters should say so.
 */
export class PublishThrottle {
  private tokens: number;
  private lastMs: number;
  private throttledSinceMs: number | undefined;
  private lastDropMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly rate: PublishRate,
    nowMs: number,
  ) {
    this.tokens = rate.burst;
    this.lastMs = nowMs;
  }

  /** One publish at `nowMs`. */
  take(nowMs: number): RateVerdict {
    if (this.rate.perSecond <= 0) return 'pass';
    const elapsed = Math.max(0, nowMs - this.lastMs);
    this.lastMs = Math.max(this.lastMs, nowMs);
    this.tokens = Math.min(this.rate.burst, this.tokens + (elapsed * this.rate.perSecond) / 1000);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 'pass';
    }
    if (this.throttledSinceMs === undefined || nowMs - this.lastDropMs > STRETCH_GAP_MS) {
      this.throttledSinceMs = nowMs;
    }
    this.lastDropMs = nowMs;
    return nowMs - this.throttledSinceMs >= this.rate.disconnectAfterMs ? 'disconnect' : 'drop';
  }
}
