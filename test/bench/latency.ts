import { build, type Histogram } from 'hdr-histogram-js';

/** Percentiles of one run, in milliseconds. */
export interface LatencySummary {
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** Latencies recorded in microseconds (1 µs to 10 min, 3 significant digits), read out in ms. */
export class LatencyHistogram {
  private readonly h: Histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });

  get count(): number {
    return this.h.totalCount;
  }

  recordMs(ms: number): void {
    // A negative latency can only be clock noise below the microsecond: count it as the floor.
    this.h.recordValue(Math.min(600_000_000, Math.max(1, Math.round(ms * 1_000))));
  }

  summary(): LatencySummary | undefined {
    if (this.h.totalCount === 0) return undefined;
    const ms = (us: number): number => Math.round(us) / 1_000;
    return {
      p50: ms(this.h.getValueAtPercentile(50)),
      p99: ms(this.h.getValueAtPercentile(99)),
      p999: ms(this.h.getValueAtPercentile(99.9)),
      max: ms(this.h.maxValue),
    };
  }
}

interface Sent {
  tsMs: number;
  measured: boolean;
}

/**
 * Pairs what comes back (a command, an upstream action) with the event that caused it. The gateway's action
 * carries the reading (`payload.temp`) and the device, not the send time, so each expected reply is keyed by
 * device and reading and matched first in, first out: a device sends the same hot reading twice within a
 * round trip rarely, and then the order is still right, because the gateway handles a device's events in order.
 */
export class ReplyMatcher {
  private readonly waiting = new Map<string, Sent[]>();
  readonly latency = new LatencyHistogram();
  expected = 0;
  matched = 0;
  /** Replies that matched nothing sent (a bug in the pairing, or a reply to an earlier run). */
  unmatched = 0;

  expect(key: string, tsMs: number, measured: boolean): void {
    const list = this.waiting.get(key);
    const sent = { tsMs, measured };
    if (list) list.push(sent);
    else this.waiting.set(key, [sent]);
    if (measured) this.expected++;
  }

  arrived(key: string, atMs: number): void {
    const list = this.waiting.get(key);
    const sent = list?.shift();
    if (!sent) {
      this.unmatched++;
      return;
    }
    if (list?.length === 0) this.waiting.delete(key);
    if (!sent.measured) return;
    this.matched++;
    this.latency.recordMs(atMs - sent.tsMs);
  }

  /** Measured replies still missing. */
  get missing(): number {
    return this.expected - this.matched;
  }

  /** Forgets what is still waiting: replies of an earlier run must not be taken for this one's. */
  reset(): void {
    this.waiting.clear();
  }
}

/** The key `ReplyMatcher` pairs on: the device and the reading as the gateway echoes it back. */
export function replyKey(deviceId: string, temp: number): string {
  return `${deviceId}|${temp}`;
}
