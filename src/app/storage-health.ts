import { Counter, Gauge } from 'prom-client';
import type { DurabilityHealth, DurableInputs } from '../runtime/index.js';
import type { StoreHealth } from '../store/index.js';
import type { Foundation } from './foundation.js';

/** Whether the gateway can write what it must, for the health endpoint. */
export interface StorageReport {
  /** The journal or LevelDB refuses writes, or checkpoints fail: inputs are held or shed, state is not trimmed. */
  degraded: boolean;
  /** One of them failed for want of room (ENOSPC). */
  diskFull: boolean;
  store: StoreHealth;
  /** Audit log entries dropped since start (their writes failed, or could not keep up). */
  auditLost: number;
}

/**
 * Puts the journal's and LevelDB's write health together for `/healthz`, and registers the
 * metrics of LevelDB's side (`vigil_storage_fault` and `vigil_events_shed_total` are the journal's).
 */
export function watchStorage(base: Foundation, durable: DurableInputs): () => StorageReport {
  const { store, audit, metrics } = base;
  const registers = [metrics.registry];
  const diskFull = (journal: DurabilityHealth, leveldb: StoreHealth): boolean =>
    journal.fault?.diskFull === true || leveldb.fault?.diskFull === true;
  const writeFault: Gauge = new Gauge({
    name: 'vigil_leveldb_write_fault',
    help: '1 from a failed LevelDB write until LevelDB is reopened (once the disk has room); writes to it are refused meanwhile',
    registers,
    collect: () => writeFault.set(store.health().state === 'ok' ? 0 : 1),
  });
  const full: Gauge = new Gauge({
    name: 'vigil_disk_full',
    help: '1 while the journal or LevelDB fails for want of room (ENOSPC)',
    registers,
    collect: () => full.set(diskFull(durable.health(), store.health()) ? 1 : 0),
  });
  const totals: Array<[name: string, help: string, read: () => number]> = [
    [
      'vigil_leveldb_write_errors_total',
      'LevelDB writes that failed (a full disk, an I/O error)',
      () => store.health().writeErrors,
    ],
    [
      'vigil_leveldb_reopens_total',
      'Times LevelDB was reopened after a failed write',
      () => store.health().reopens,
    ],
    [
      'vigil_audit_entries_lost_total',
      'Audit log entries dropped because their write failed (a full disk) or could not keep up',
      () => audit.lost,
    ],
  ];
  for (const [name, help, read] of totals) {
    const counter: Counter = new Counter({
      name,
      help,
      registers,
      collect: () => {
        counter.reset();
        counter.inc(read());
      },
    });
  }
  return () => {
    const journal = durable.health();
    const leveldb = store.health();
    return {
      degraded:
        journal.state === 'storage-fault' || journal.checkpointFault !== undefined || leveldb.state !== 'ok',
      diskFull: diskFull(journal, leveldb),
      store: leveldb,
      auditLost: audit.lost,
    };
  };
}
