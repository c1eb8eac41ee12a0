import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LATENCY_BUCKETS, metricFamilies } from './metric-families.js';

/** What the journal, the checkpoints and recovery report, in the gateway's registry. */
export class DurabilityMetrics {
  readonly records: Counter<'persist'>;
  /**
   * Records counted by `persist`, copied into `records` at scrape time: prom-client's `inc` with labels (bound or not)
   * hashes them into a new string on every call, once per input here.
   */
  readonly recorded = { sync: 0, write: 0 };
  readonly commits: Counter<'synced'>;
  readonly bytes: Counter;
  /** Commits and their bytes, copied into `commits` and `bytes` at scrape time (as `recorded`). */
  readonly committed = { synced: 0, unsynced: 0, bytes: 0 };
  readonly commitSeconds: Histogram;
  readonly storageFault: Gauge;
  readonly writeErrors: Counter;
  readonly held: Gauge;
  readonly duplicates: Counter;
  readonly checkpoints: Counter<'result'>;
  readonly checkpointBytes: Gauge;
  readonly checkpointSeconds: Gauge;
  readonly recoveryRecords: Counter;
  readonly recoverySeconds: Gauge;
  readonly commandsNotResent: Counter;
  readonly droppedActionsNotResent: Counter;
  readonly timersOverdue: Gauge;
  readonly outboxRetries: Counter;
  readonly shed: Counter<'reason'>;

  /** `heldNow` is read at scrape time: inputs waiting to be recorded or applied. */
  constructor(registry: Registry, heldNow: () => number) {
    const { counter, gauge, histogram } = metricFamilies(registry);
    this.records = counter(
      'vigil_journal_records_total',
      'Inputs recorded in the journal, by how far they were persisted before they went on (sync or write)',
      {
        labels: ['persist'],
        collect: () => {
          this.records.reset();
          this.records.inc({ persist: 'sync' }, this.recorded.sync);
          this.records.inc({ persist: 'write' }, this.recorded.write);
        },
      },
    );
    this.commits = counter(
      'vigil_journal_commits_total',
      'Group commits of the journal, by whether they ended with an fdatasync',
      {
        labels: ['synced'],
        collect: () => {
          this.commits.reset();
          this.commits.inc({ synced: 'true' }, this.committed.synced);
          this.commits.inc({ synced: 'false' }, this.committed.unsynced);
        },
      },
    );
    this.bytes = counter('vigil_journal_bytes_total', 'Bytes appended to the journal', {
      collect: () => {
        this.bytes.reset();
        this.bytes.inc(this.committed.bytes);
      },
    });
    this.commitSeconds = histogram(
      'vigil_journal_commit_seconds',
      'Time to write (and sync) one group commit',
      LATENCY_BUCKETS,
    );
    this.storageFault = gauge(
      'vigil_storage_fault',
      '1 while the journal cannot write: QoS 1 publishes are not acknowledged, QoS 0 device events are shed, other inputs are held',
    );
    this.writeErrors = counter(
      'vigil_journal_write_errors_total',
      'Failed attempts to write or sync the journal',
    );
    this.held = gauge(
      'vigil_journal_held',
      'Inputs waiting to be recorded or applied (a commit in progress, the storage failing, recovery)',
      { collect: () => this.held.set(heldNow()) },
    );
    this.duplicates = counter(
      'vigil_publish_resends_total',
      'QoS 1 publishes recognised as resends of recorded ones: acknowledged, not processed again',
    );
    this.checkpoints = counter(
      'vigil_checkpoints_total',
      'Checkpoints of the engine and arbiter state, by result',
      { labels: ['result'] },
    );
    this.checkpointBytes = gauge('vigil_checkpoint_bytes', 'Size of the last checkpoint written');
    this.checkpointSeconds = gauge(
      'vigil_checkpoint_seconds',
      'Time the last checkpoint took, from snapshot to synced file',
    );
    this.recoveryRecords = counter(
      'vigil_recovery_replayed_total',
      'Journal records replayed through the engine on start',
    );
    this.recoverySeconds = gauge(
      'vigil_recovery_seconds',
      'Time the last start-up recovery took (checkpoint load and journal replay)',
    );
    this.commandsNotResent = counter(
      'vigil_recovery_commands_not_resent_total',
      'Device commands decided again while replaying the journal, not sent again',
    );
    this.droppedActionsNotResent = counter(
      'vigil_recovery_dropped_not_resent_total',
      'Cloud actions decided again while replaying the journal that the outbox had dropped to make room: not queued again',
    );
    this.timersOverdue = gauge(
      'vigil_timers_overdue_on_start',
      'Timers whose deadline passed while the gateway was down, firing after a grace period',
    );
    this.shed = counter(
      'vigil_events_shed_total',
      'QoS 0 device events dropped unprocessed, by reason (storage-fault: the journal could not write)',
      { labels: ['reason'] },
    );
    this.outboxRetries = counter(
      'vigil_outbox_write_retries_total',
      'Outbox writes that failed and were tried again',
    );
  }
}
