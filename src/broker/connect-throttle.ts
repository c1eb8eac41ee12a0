export interface ConnectThrottleOptions {
  /** Refused connects from one address answered at full speed before the slowdown starts. */
  freeFailures: number;
  /** The wait after the first failure beyond the free ones; it doubles with each further one. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** An address that has not failed for this long starts afresh. */
  forgetAfterMs: number;
  /** Addresses remembered at most; the one that failed longest ago is forgotten first. */
  maxAddresses: number;
}

export const DEFAULT_CONNECT_THROTTLE: ConnectThrottleOptions = {
  freeFailures: 5,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  forgetAfterMs: 10 * 60_000,
  maxAddresses: 10_000,
};

interface Failures {
  failures: number;
  lastMs: number;
}

/**
 * Slows down repeated refused connects from one address: the gateway waits before it answers the next
 * CONNECT from there, 250 ms doubling to 10 s. Guessing a 256-bit secret is hopeless anyway; this keeps
 * a misconfigured or hostile client from costing CPU and log lines at the rate it can reconnect.
 * Time is passed in (ms).
 */
export class ConnectThrottle {
  // Insertion order is failure order: a failing address is moved to the end.
  private readonly byAddress = new Map<string, Failures>();

  constructor(private readonly opts: ConnectThrottleOptions = DEFAULT_CONNECT_THROTTLE) {}

  /** How long to hold a CONNECT from `address` before answering it. */
  delayFor(address: string, nowMs: number): number {
    const record = this.current(address, nowMs);
    if (record === undefined) return 0;
    const over = record.failures - this.opts.freeFailures;
    if (over < 0) return 0;
    return Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** Math.min(over, 30));
  }

  failed(address: string, nowMs: number): void {
    const record = this.current(address, nowMs);
    this.byAddress.delete(address);
    this.byAddress.set(address, { failures: (record?.failures ?? 0) + 1, lastMs: nowMs });
    while (this.byAddress.size > this.opts.maxAddresses) {
      const oldest = this.byAddress.keys().next();
      if (oldest.done === true) break;
      this.byAddress.delete(oldest.value);
    }
  }

  succeeded(address: string): void {
    this.byAddress.delete(address);
  }

  /** Addresses with failures on record. */
  get size(): number {
    return this.byAddress.size;
  }

  private current(address: string, nowMs: number): Failures | undefined {
    const record = this.byAddress.get(address);
    if (record === undefined) return undefined;
    if (nowMs - record.lastMs >= this.opts.forgetAfterMs) {
      this.byAddress.delete(address);
      return undefined;
    }
    return record;
  }
}
