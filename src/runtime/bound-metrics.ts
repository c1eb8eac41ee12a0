import type { Counter, Gauge, Registry } from 'prom-client';
import type { LastSeenEviction } from './last-seen.js';
import { metricFamilies } from './metric-families.js';

/** The queues with a bound: inputs waiting for a profile read, inputs held unapplied, the `--record` file. */
export type BoundedQueue = 'ingest' | 'held' | 'recorder';

/** What each bound on memory refused or evicted, in the gateway's registry. */
export class BoundMetrics {
  readonly refused: Counter<'queue'>;
  readonly queued: Gauge<'queue'>;
  readonly lastSeenEvicted: Counter<'reason'>;
  readonly lastSeenDevices: Gauge;
  readonly arbiterEvicted: Counter;
  readonly arbiterEntries: Gauge;
  private readonly lengths = new Map<BoundedQueue, () => number>();
  private arbiterSize: () => number = () => 0;

  constructor(registry: Registry, lastSeenDevices: () => number) {
    const { counter, gauge } = metricFamilies(registry);
    this.refused = counter(
      'vigil_queue_refused_total',
      'Inputs a full queue refused: QoS 1 publishes not acknowledged (the device sends them again), QoS 0 ones dropped; recorder: events not written to the record file',
      { labels: ['queue'] },
    );
    this.queued = gauge('vigil_queue_length', 'Inputs (recorder: bytes) waiting in each bounded queue', {
      labels: ['queue'],
      collect: () => {
        for (const [queue, length] of this.lengths) this.queued.set({ queue }, length());
      },
    });
    this.lastSeenEvicted = counter(
      'vigil_last_seen_evicted_total',
      "Devices whose last-seen time was forgotten: unneeded (neither known, connected nor awaited by a timer) or bound (over durability's lastSeen bound)",
      { labels: ['reason'] },
    );
    this.lastSeenDevices = gauge('vigil_last_seen_devices', 'Devices whose last-seen time is kept', {
      collect: () => this.lastSeenDevices.set(lastSeenDevices()),
    });
    this.arbiterEvicted = counter(
      'vigil_arbiter_evicted_total',
      'Cooldowns, exclusive sends and contact keys the arbiter forgot over its bound (limits.arbiterEntries) before they ended: each could let through an action the policy would have suppressed',
    );
    this.arbiterEntries = gauge(
      'vigil_arbiter_entries',
      'Cooldowns, exclusive sends and contact keys the arbiter remembers',
      { collect: () => this.arbiterEntries.set(this.arbiterSize()) },
    );
    for (const queue of ['ingest', 'held', 'recorder'] as const) this.refused.inc({ queue }, 0);
    for (const reason of ['unneeded', 'bound'] as const) this.lastSeenEvicted.inc({ reason }, 0);
  }

  /** Reports the length of `queue` at scrape time. */
  measure(queue: BoundedQueue, length: () => number): void {
    this.lengths.set(queue, length);
  }

  /** Reports the size of the arbiter's memory at scrape time. */
  measureArbiter(entries: () => number): void {
    this.arbiterSize = entries;
  }

  evicted(reason: LastSeenEviction, devices: number): void {
    this.lastSeenEvicted.inc({ reason }, devices);
  }
}
