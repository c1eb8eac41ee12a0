import type { Telemetry } from '../shared/index.js';

/** What the lane does when it is full: drop the oldest message waiting, or the one arriving. */
export type TelemetryDrop = 'oldest' | 'newest';

export interface TelemetryLaneOptions {
  gatewayId: string;
  /** Messages waiting, at most. */
  maxCount: number;
  /** Bytes of messages waiting, at most. */
  maxBytes: number;
  drop: TelemetryDrop;
}

/** One telemetry message, ready to publish. */
export interface TelemetryMessage {
  topic: string;
  payload: string;
}

/** What became of the telemetry offered to the lane, since start. */
export interface TelemetryCounts {
  /** Published (QoS 0: handed to the connection). */
  sent: number;
  /** Dropped because the lane was full (`drop` says which). */
  dropped: number;
  /** Left out by the scenario's sampling (`sample`, `every`). */
  sampledOut: number;
}

/** Sampling state per scenario and actor, at most; past it, sampling starts over (rare, and harmless). */
const MAX_SAMPLED = 100_000;

/**
 * The uplink's low-priority lane for telemetry (`then.forward`, docs/sync.md "Telemetry"): in memory, bounded in
 * messages and bytes with its own drop policy, and sent at most once (QoS 0), only while no action waits to be
 * sent. Nothing of it is journaled or remembered as delivered: a crash or a full lane loses telemetry, never an
 * action, and never delays one.
 */
export class TelemetryLane {
  private readonly queue: Array<TelemetryMessage | undefined> = [];
  private head = 0;
  private bytesWaiting = 0;
  private readonly sampling = new Map<string, { seen: number; lastAt: number }>();
  readonly counts: TelemetryCounts = { sent: 0, dropped: 0, sampledOut: 0 };

  constructor(private readonly opts: TelemetryLaneOptions) {
    if (opts.maxCount < 1 || opts.maxBytes < 1) {
      throw new RangeError(`telemetry lane needs maxCount and maxBytes >= 1, got ${JSON.stringify(opts)}`);
    }
  }

  get size(): number {
    return this.queue.length - this.head;
  }

  get bytes(): number {
    return this.bytesWaiting;
  }

  /** Takes what a scenario forwards: sampled, then queued (dropping by the policy when full). True when queued. */
  offer(t: Telemetry): boolean {
    if (!this.sampled(t)) {
      this.counts.sampledOut += 1;
      return false;
    }
    const message: TelemetryMessage = {
      topic: `vigil/${this.opts.gatewayId}/telemetry/${t.type}`,
      payload: JSON.stringify({
        gateway: this.opts.gatewayId,
        scenario: t.scenario,
        actor: t.actor,
        type: t.type,
        of: t.of,
        at: t.at,
        data: t.data,
      }),
    };
    const bytes = Buffer.byteLength(message.payload);
    if (bytes > this.opts.maxBytes) {
      this.counts.dropped += 1;
      return false;
    }
    while (this.size >= this.opts.maxCount || this.bytesWaiting + bytes > this.opts.maxBytes) {
      if (this.opts.drop === 'newest') {
        this.counts.dropped += 1;
        return false;
      }
      this.take();
      this.counts.dropped += 1;
    }
    this.queue.push(message);
    this.bytesWaiting += bytes;
    return true;
  }

  /** The oldest message waiting, removed from the lane; the caller publishes it (or it is lost). */
  take(): TelemetryMessage | undefined {
    if (this.size === 0) return undefined;
    const message = this.queue[this.head];
    this.queue[this.head] = undefined;
    this.head += 1;
    if (this.head > 1_024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (message) this.bytesWaiting -= Buffer.byteLength(message.payload);
    return message;
  }

  /** One message taken was published. */
  sent(): void {
    this.counts.sent += 1;
  }

  /** `sample: N` lets the 1st, (N+1)th… firing of a scenario for an actor through; `every` one per interval. */
  private sampled(t: Telemetry): boolean {
    if (t.oneIn === undefined && t.everyMs === undefined) return true;
    const key = `${t.scenario}\u0000${t.actor}`;
    let s = this.sampling.get(key);
    if (s === undefined) {
      if (this.sampling.size >= MAX_SAMPLED) this.sampling.clear();
      s = { seen: 0, lastAt: Number.NEGATIVE_INFINITY };
      this.sampling.set(key, s);
    }
    if (t.oneIn !== undefined) return s.seen++ % t.oneIn === 0;
    if (t.everyMs !== undefined && t.at - s.lastAt < t.everyMs) return false;
    s.lastAt = t.at;
    return true;
  }
}
