import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { StoreIoError, StoreLockedError } from '../shared/index.js';
import { cborEncoding } from './cbor-encoding.js';
import { DISK_HINT } from './store-io.js';
import type { RootLevel, Sublevel } from './level-types.js';
import { storeIo } from './store-io.js';
import { CommandOutbox, type CommandOutboxLimits } from './command-outbox.js';
import type { OutboxLimits } from './outbox.js';
import { Outbox } from './outbox.js';
import { DEFAULT_PROFILE_CACHE_ENTRIES, ProfileStore } from './profile-store.js';
import { ReopenableLevel } from './reopenable-level.js';
import { checkStoreFormat } from './store-format.js';
import { StoreWrites } from './store-writes.js';
import { WriteFaultWatch, type StoreHealth, type WriteFaultOptions } from './write-fault.js';

// `delivered`: ids of the actions the cloud acknowledged, with the gateway time (the outbox's).
export const SUBLEVEL_NAMES = [
  'profiles',
  'outbox',
  'delivered',
  'state',
  'rules',
  'creds',
  'audit',
  'commands',
  // The ids of device commands dropped unsent to make room, with the gateway time (the command outbox's).
  'commands-dropped',
  // The ids of actions for the cloud dropped unsent to make room, with the gateway time (the outbox's).
  'outbox-dropped',
] as const;
export type SublevelName = (typeof SUBLEVEL_NAMES)[number];

export interface StoreOptions {
  /** Profiles (and known misses) kept in memory, in entries; default 100,000. */
  profileCacheSize?: number | undefined;
  outbox?: Partial<OutboxLimits> | undefined;
  commands?: Partial<CommandOutboxLimits> | undefined;
  /**
   * LevelDB's in-memory write buffer (its memtable): writes are held there until it is full, and an open replays
   * what its log holds into it. A larger one speeds bulk imports; the gateway keeps it small (`store.writeBuffer`),
   * since its memory stays in the process. Default 16 MiB.
   */
  writeBufferBytes?: number | undefined;
  /** LevelDB's cache of uncompressed blocks read from its tables. Default LevelDB's, 8 MiB. */
  blockCacheBytes?: number | undefined;
  /** False for commands that only read: a missing database is then an error, not created. Default true. */
  createIfMissing?: boolean | undefined;
  /** Where a failed write and the reopen after it are reported. */
  logger?: Logger | undefined;
  /** How a failed write is waited out (tests shorten the back-off); see `WriteFaultWatch`. */
  writeFault?: Omit<WriteFaultOptions, 'logger'> | undefined;
}

/**
 * The gateway's LevelDB: one directory, one process at a time. After a failed write (a full disk) it refuses
 * writes and, once the disk has room, is reopened under the same `db` and `sublevels` objects, so whatever
 * holds them (profiles, outbox, audit log, credentials, bundles) goes on without knowing.
 */
export interface Store {
  readonly dir: string;
  readonly db: RootLevel;
  /** Every area of the database, values CBOR-encoded; keys are strings local to each. */
  readonly sublevels: Readonly<Record<SublevelName, Sublevel>>;
  readonly profiles: ProfileStore;
  readonly outbox: Outbox;
  /** Device commands until their device took them. */
  readonly commands: CommandOutbox;
  /** Whether LevelDB takes writes, and since when it does not. */
  health(): StoreHealth;
  /**
   * Makes what was written without a sync of its own (the outboxes' entries, delivered ids) durable: one synced
   * write, which syncs LevelDB's log up to it.
   */
  sync(): Promise<void>;
  /** Waits for pending outbox writes, then closes LevelDB. */
  close(): Promise<void>;
}

const DEFAULT_WRITE_BUFFER_BYTES = 16 * 1024 * 1024;

/**
 * Opens (creating it if missing) the LevelDB in `dir`. Throws StoreLockedError when another process
 * has it open, StoreIoError when it cannot be read.
 */
export async function openStore(dir: string, opts: StoreOptions = {}): Promise<Store> {
  let watch: WriteFaultWatch | undefined;
  const level = new ReopenableLevel(
    dir,
    {
      keyEncoding: 'utf8',
      valueEncoding: cborEncoding,
      writeBufferSize: opts.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES,
      ...(opts.blockCacheBytes !== undefined ? { cacheSize: opts.blockCacheBytes } : {}),
    },
    (err) => watch?.failed(err),
  );
  watch = new WriteFaultWatch(level, { ...opts.writeFault, logger: opts.logger });
  const faults = watch;
  const db: RootLevel = level;
  try {
    await db.open({ createIfMissing: opts.createIfMissing ?? true });
  } catch (err) {
    if (isLocked(err)) throw new StoreLockedError(dir, { cause: err });
    throw new StoreIoError(`cannot open the data directory ${dir}: ${describe(err)}`, {
      cause: err,
      hint: DISK_HINT,
    });
  }
  const sublevels = Object.fromEntries(
    SUBLEVEL_NAMES.map((name) => [name, db.sublevel<string, unknown>(name, { valueEncoding: cborEncoding })]),
  ) as Record<SublevelName, Sublevel>;
  let outbox: Outbox;
  let commands: CommandOutbox;
  try {
    // Before anything reads a value: a database in a newer format is not read at all.
    await checkStoreFormat(sublevels.state, dir, opts.createIfMissing ?? true);
    // The outboxes encode their values themselves: they need their size to enforce their byte bounds.
    // They share their writes of a turn (`StoreWrites`): an action for the cloud and its device is one write.
    const writes = new StoreWrites((ops, sync) => level.writeEncoded(ops, sync));
    const raw = db.sublevel<string, Buffer>('outbox', { valueEncoding: 'buffer' });
    const levels = { outbox: raw, delivered: sublevels.delivered, dropped: sublevels['outbox-dropped'] };
    outbox = await Outbox.open(writes, levels, opts.outbox, {
      onReadError: (err, attempt) => {
        if (attempt === 1 || attempt % 10 === 0)
          opts.logger?.warn(
            { err, attempt },
            'outbox: reading actions back from LevelDB failed; trying again',
          );
      },
      onDeleteError: (err, attempt) => {
        if (attempt === 1 || attempt % 10 === 0)
          opts.logger?.warn(
            { err, attempt },
            'outbox: deleting actions the cloud acknowledged failed; trying again (they are not sent again meanwhile)',
          );
      },
    });
    const rawCommands = db.sublevel<string, Buffer>('commands', { valueEncoding: 'buffer' });
    const rawDropped = db.sublevel<string, Buffer>('commands-dropped', { valueEncoding: 'buffer' });
    commands = await CommandOutbox.open(
      writes,
      { commands: rawCommands, dropped: rawDropped },
      opts.commands,
    );
  } catch (err) {
    await db.close();
    throw err;
  }
  const profiles = new ProfileStore(
    db,
    sublevels.profiles,
    opts.profileCacheSize ?? DEFAULT_PROFILE_CACHE_ENTRIES,
  );
  let closing: Promise<void> | undefined;
  return {
    dir,
    db,
    sublevels,
    profiles,
    outbox,
    commands,
    health: () => faults.health(),
    sync: () =>
      storeIo('syncing the store', () =>
        db.batch([{ type: 'put', sublevel: sublevels.state, key: 'synced', value: Date.now() }], {
          sync: true,
        }),
      ),
    close() {
      closing ??= (async () => {
        await outbox.close();
        await commands.close();
        await faults.stop();
        await db.close();
      })();
      return closing;
    },
  };
}

/** Whether `dir` holds a database (LevelDB's CURRENT file names its manifest). */
export async function storeExists(dir: string): Promise<boolean> {
  try {
    await access(join(dir, 'CURRENT'));
    return true;
  } catch {
    return false;
  }
}

function isLocked(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as Error & { code?: unknown }).code === 'LEVEL_LOCKED') return true;
  }
  return false;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
}
