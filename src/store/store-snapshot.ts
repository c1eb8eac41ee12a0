import { constants } from 'node:fs';
import { copyFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { StoreIoError, VigilError } from '../shared/index.js';
import { cborEncoding } from './cbor-encoding.js';
import type { RootLevel } from './level-types.js';
import { DEFAULT_PROFILE_CACHE_ENTRIES, ProfileStore } from './profile-store.js';
import { storeExists } from './store.js';
import { DISK_HINT } from './store-io.js';

/** A copy of a data directory's LevelDB, opened: the profiles as they were when it was copied. */
export interface StoreSnapshot {
  readonly profiles: ProfileStore;
  /** Where the copy is (a temporary directory, removed by `close`). */
  readonly dir: string;
  /** How many times the store changed while it was copied, and was copied again. */
  readonly recopied: number;
  close(): Promise<void>;
}

export interface SnapshotOptions {
  /** Where the temporary copy goes; default the system's (`TMPDIR`). */
  tempRoot?: string | undefined;
  /** Copies tried before giving up on a store that keeps changing; default 5. */
  attempts?: number | undefined;
  profileCacheSize?: number | undefined;
}

// The files LevelDB reads on open. Not LOCK (the copy takes its own), LOG (its diagnostics) or *.dbtmp (a CURRENT
// being written).
const LEVELDB_FILE = /^(CURRENT|MANIFEST-\d+|\d+\.(log|ldb|sst))$/;
// Tables are written whole under a new number and never change after; the log and the manifest only grow.
const TABLE_FILE = /\.(ldb|sst)$/;
const DEFAULT_ATTEMPTS = 5;

/**
 * Copies the LevelDB in `dataDir` to a temporary directory and opens the copy, so that the store can be read
 * without writing a byte in `dataDir` (LevelDB writes files on open) and beside a gateway that holds it.
 * Undefined when `dataDir` holds no store.
 *
 * A running gateway may write while the files are copied. LevelDB only appends to its log and manifest, writes
 * each table whole under a new number, and deletes files only once the manifest no longer needs them; a copy
 * whose files all existed, under the same inodes, from before it began to after it ended, with its tables the
 * same size, is therefore the directory as a crash would have left it at some moment during the copy, and
 * LevelDB recovers that on open (an append cut short at the end of the log or manifest is dropped). A copy that
 * saw files come, go or a table grow (a memtable flush or a compaction) is made again; after `attempts` tries
 * the store is refused as busy.
 */
export async function openStoreSnapshot(
  dataDir: string,
  opts: SnapshotOptions = {},
): Promise<StoreSnapshot | undefined> {
  if (!(await storeExists(dataDir))) return undefined;
  const dir = await mkdtemp(join(opts.tempRoot ?? tmpdir(), 'vigil-store-copy-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    const recopied = await copyStable(dataDir, dir, opts.attempts ?? DEFAULT_ATTEMPTS);
    const db: RootLevel = new Level<string, unknown>(dir, {
      keyEncoding: 'utf8',
      valueEncoding: cborEncoding,
    });
    await db.open({ createIfMissing: false }).catch((err: unknown) => {
      throw new StoreIoError(`the copy of the store in ${dataDir} cannot be opened: ${messageOf(err)}`, {
        cause: err,
        hint: DISK_HINT,
      });
    });
    const sublevel = db.sublevel<string, unknown>('profiles', { valueEncoding: cborEncoding });
    const profiles = new ProfileStore(db, sublevel, opts.profileCacheSize ?? DEFAULT_PROFILE_CACHE_ENTRIES);
    return {
      profiles,
      dir,
      recopied,
      close: async () => {
        await db.close();
        await remove();
      },
    };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** The store in `dataDir` is written too busily to be copied whole. */
export class StoreBusyError extends VigilError {
  constructor(dataDir: string, attempts: number) {
    super(
      'VIGIL_STORE_LOCKED',
      `the store in ${dataDir} changed under each of ${attempts} copies (the gateway that holds it is flushing or compacting)`,
      { hint: 'try again in a moment, or stop the gateway that runs on the data directory' },
    );
  }
}

/** Copies the LevelDB files of `from` into `to` until a copy is consistent; returns how many were made again. */
async function copyStable(from: string, to: string, attempts: number): Promise<number> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) {
      for (const name of await readdir(to)) await rm(join(to, name), { force: true });
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
    const before = await listing(from);
    const copied = await copyAll(from, to, [...before.keys()]);
    if (copied && unchanged(before, await listing(from))) return attempt;
  }
  throw new StoreBusyError(from, attempts);
}

interface FileMark {
  ino: number;
  size: number;
}

async function listing(dir: string): Promise<Map<string, FileMark>> {
  const marks = new Map<string, FileMark>();
  for (const name of await readdir(dir)) {
    if (!LEVELDB_FILE.test(name)) continue;
    const info = await stat(join(dir, name)).catch(() => undefined);
    if (info !== undefined) marks.set(name, { ino: info.ino, size: info.size });
  }
  return marks;
}

/** False when a file went away while it was copied. */
async function copyAll(from: string, to: string, names: readonly string[]): Promise<boolean> {
  for (const name of names) {
    try {
      // A reflink where the file system has them, a plain copy elsewhere.
      await copyFile(join(from, name), join(to, name), constants.COPYFILE_FICLONE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw new StoreIoError(`cannot copy ${join(from, name)}: ${messageOf(err)}`, {
        cause: err,
        hint: 'check that the temporary directory (TMPDIR) has room for a copy of the store',
      });
    }
  }
  return true;
}

function unchanged(before: Map<string, FileMark>, after: Map<string, FileMark>): boolean {
  if (before.size !== after.size) return false;
  for (const [name, was] of before) {
    const now = after.get(name);
    if (now === undefined || now.ino !== was.ino || now.size < was.size) return false;
    if (TABLE_FILE.test(name) && now.size !== was.size) return false;
  }
  return true;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
