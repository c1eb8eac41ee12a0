import { Counter, Gauge, type Registry } from 'prom-client';
import type { IngestMetrics } from './types.js';

/** The bounds on cloud events (`vigil/{gw}/events`), from `ingest.cloudEvents`. */
export interface CloudEventLimitsOptions {
  /** Largest payload, in bytes; a larger one is refused before it is decoded. */
  maxBytes: number;
  /** Sustained events per second, for the gateway as a whole; 0 turns the rate limit off. */
  perSecond: number;
  /** Events allowed in a burst on top of the sustained rate (the bucket's size). */
  burst: number;
}

/** `size`: over `maxBytes`; `rate`: over the token bucket. */
export type CloudEventLimit = 'size' | 'rate';

export type CloudEventVerdict = { ok: true } | { ok: false; limit: CloudEventLimit; detail: string };

/**
 * Size and rate of the events a business system sends down. One bucket for all of them: they come from one
 * cloud connection, and a flood of them (a backlog included) would otherwise take the decision loop's time from
 * the devices'. What is over a limit is refused, dead-lettered and acknowledged like any refused event.
 */
export class CloudEventLimits {
  private tokens: number;
  private lastMs: number;

  /** `now` is monotonic time in ms. */
  constructor(
    private readonly opts: CloudEventLimitsOptions,
    private readonly now: () => number,
  ) {
    this.tokens = opts.burst;
    this.lastMs = now();
  }

  /** One event of `bytes`: whether it may go on. An event refused for its size takes no token. */
  admit(bytes: number): CloudEventVerdict {
    const { maxBytes, perSecond, burst } = this.opts;
    if (bytes > maxBytes) {
      return { ok: false, limit: 'size', detail: `${bytes} bytes is over the limit of ${maxBytes}` };
    }
    if (perSecond <= 0) return { ok: true };
    const nowMs = this.now();
    const elapsed = Math.max(0, nowMs - this.lastMs);
    this.lastMs = Math.max(this.lastMs, nowMs);
    this.tokens = Math.min(burst, this.tokens + (elapsed * perSecond) / 1000);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return {
      ok: false,
      limit: 'rate',
      detail: `over the rate of ${perSecond} cloud events per second (burst ${burst})`,
    };
  }
}

/** The counter of refusals and the gauge of the limits in force, registered on `registry`. */
export function cloudEventMetrics(
  registry: Registry,
  limits: CloudEventLimitsOptions,
): Required<Pick<IngestMetrics, 'cloudLimitHit'>> {
  const hits = new Counter({
    name: 'vigil_cloud_event_limit_hits_total',
    help: 'Cloud events (vigil/{gw}/events) refused and dead-lettered for a limit: size (ingest.cloudEvents.maxBytes) or rate',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  const inForce = new Gauge({
    name: 'vigil_cloud_event_limit',
    help: 'The cloud event limits in force: max-bytes, per-second (0: no rate limit), burst',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  for (const limit of ['size', 'rate'] as const) hits.inc({ limit }, 0);
  inForce.set({ limit: 'max-bytes' }, limits.maxBytes);
  inForce.set({ limit: 'per-second' }, limits.perSecond);
  inForce.set({ limit: 'burst' }, limits.burst);
  return { cloudLimitHit: (limit) => hits.inc({ limit }) };
}
