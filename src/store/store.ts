import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { StoreIoError, StoreLockedError } from '../shared/index.js';
import { cborEncoding } from './cbor-encoding.js';
import type { RootLevel, Sublevel } from './level-types.js';
import type { OutboxLimits } from './outbox.js';
import { Outbox } from './outbox.js';
import { DEFAULT_PROFILE_CACHE_ENTRIES, ProfileStore } from './profile-store.js';

// `delivered`: ids of the actions the cloud acknowledged, with the gateway time (the outbox's).
export const SUBLEVEL_NAMES = [
  'profiles',
  'outbox',
  'delivered',
  'state',
  'rules',
  'creds',
  'audit',
] as const;
export type SublevelName = (typeof SUBLEVEL_NAMES)[number];

export interface StoreOptions {
  /** Profiles (and known misses) kept in memory, in entries; default 100,000. */
  profileCacheSize?: number | undefined;
  outbox?: Partial<OutboxLimits> | undefined;
  /** LevelDB's in-memory write buffer; a larger one speeds bulk imports. Default 16 MiB. */
  writeBufferBytes?: number | undefined;
  /** False for commands that only read: a missing database is then an error, not created. Default true. */
  createIfMissing?: boolean | undefined;
}

/** The gateway's LevelDB: one directory, one process at a time. */
export interface Store {
  readonly dir: string;
  readonly db: RootLevel;
  /** Every area of the database, values CBOR-encoded; keys are strings local to each. */
  readonly sublevels: Readonly<Record<SublevelName, Sublevel>>;
  readonly profiles: ProfileStore;
  readonly outbox: Outbox;
  /** Waits for pending outbox writes, then closes LevelDB. */
  close(): Promise<void>;
}

const DEFAULT_WRITE_BUFFER_BYTES = 16 * 1024 * 1024;

/**
 * Opens (creating it if missing) the LevelDB in `dir`. Throws StoreLockedError when another process
 * has it open, StoreIoError when it cannot be read.
 */
export async function openStore(dir: string, opts: StoreOptions = {}): Promise<Store> {
  const db: RootLevel = new Level<string, unknown>(dir, {
    keyEncoding: 'utf8',
    valueEncoding: cborEncoding,
    writeBufferSize: opts.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES,
  });
  try {
    await db.open({ createIfMissing: opts.createIfMissing ?? true });
  } catch (err) {
    if (isLocked(err)) throw new StoreLockedError(dir, { cause: err });
    throw new StoreIoError(`cannot open the data directory ${dir}: ${describe(err)}`, { cause: err });
  }
  const sublevels = Object.fromEntries(
    SUBLEVEL_NAMES.map((name) => [name, db.sublevel<string, unknown>(name, { valueEncoding: cborEncoding })]),
  ) as Record<SublevelName, Sublevel>;
  let outbox: Outbox;
  try {
    // The outbox encodes its values itself: it needs their size to enforce its byte bound.
    const raw = db.sublevel<string, Buffer>('outbox', { valueEncoding: 'buffer' });
    outbox = await Outbox.open(db, { outbox: raw, delivered: sublevels.delivered }, opts.outbox);
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
    close() {
      closing ??= (async () => {
        await outbox.close();
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
