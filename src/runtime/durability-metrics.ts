import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** What the journal, the checkpoints and recovery report, in the gateway's registry. */
export class DurabilityMetrics {
  readonly records: Counter<'persist'>;
  readonly commits: Counter<'synced'>;
  readonly bytes: Counter;
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
  readonly timersOverdue: Gauge;
  readonly outboxRetries: Counter;
  readonly shed: Counter<'reason'>;

  /** `heldNow` is read at scrape time: inputs waiting to be recorded or applied. */
  constructor(registry: Registry, heldNow: () => number) {
    const registers = [registry];
    this.records = new Counter({
      name: 'vigil_journal_records_total',
      help: 'Inputs recorded in the journal, by how far they were persisted before they went on (sync or write)',
      labelNames: ['persist'] as const,
      registers,
    });
    this.commits = new Counter({
      name: 'vigil_journal_commits_total',
      help: 'Group commits of the journal, by whether they ended with an fdatasync',
      labelNames: ['synced'] as const,
      registers,
    });
    this.bytes = new Counter({
      name: 'vigil_journal_bytes_total',
      help: 'Bytes appended to the journal',
      registers,
    });
    this.commitSeconds = new Histogram({
      name: 'vigil_journal_commit_seconds',
      help: 'Time to write (and sync) one group commit',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registers,
    });
    this.storageFault = new Gauge({
      name: 'vigil_storage_fault',
      help: '1 while the journal cannot write: QoS 1 publishes are not acknowledged, QoS 0 device events are shed, other inputs are held',
      registers,
    });
    this.writeErrors = new Counter({
      name: 'vigil_journal_write_errors_total',
      help: 'Failed attempts to write or sync the journal',
      registers,
    });
    this.held = new Gauge({
      name: 'vigil_journal_held',
      help: 'Inputs waiting to be recorded or applied (a commit in progress, the storage failing, recovery)',
      registers,
      collect: () => this.held.set(heldNow()),
    });
    this.duplicates = new Counter({
      name: 'vigil_publish_resends_total',
      help: 'QoS 1 publishes recognised as resends of recorded ones: acknowledged, not processed again',
      registers,
    });
    this.checkpoints = new Counter({
      name: 'vigil_checkpoints_total',
      help: 'Checkpoints of the engine and arbiter state, by result',
      labelNames: ['result'] as const,
      registers,
    });
    this.checkpointBytes = new Gauge({
      name: 'vigil_checkpoint_bytes',
      help: 'Size of the last checkpoint written',
      registers,
    });
    this.checkpointSeconds = new Gauge({
      name: 'vigil_checkpoint_seconds',
      help: 'Time the last checkpoint took, from snapshot to synced file',
      registers,
    });
    this.recoveryRecords = new Counter({
      name: 'vigil_recovery_replayed_total',
      help: 'Journal records replayed through the engine on start',
      registers,
    });
    this.recoverySeconds = new Gauge({
      name: 'vigil_recovery_seconds',
      help: 'Time the last start-up recovery took (checkpoint load and journal replay)',
      registers,
    });
    this.commandsNotResent = new Counter({
      name: 'vigil_recovery_commands_not_resent_total',
      help: 'Device commands decided again while replaying the journal, not sent again',
      registers,
    });
    this.timersOverdue = new Gauge({
      name: 'vigil_timers_overdue_on_start',
      help: 'Timers whose deadline passed while the gateway was down, firing after a grace period',
      registers,
    });
    this.shed = new Counter({
      name: 'vigil_events_shed_total',
      help: 'QoS 0 device events dropped unprocessed, by reason (storage-fault: the journal could not write)',
      labelNames: ['reason'] as const,
      registers,
    });
    this.outboxRetries = new Counter({
      name: 'vigil_outbox_write_retries_total',
      help: 'Outbox writes that failed and were tried again',
      registers,
    });
  }
}
