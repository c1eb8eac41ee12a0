import { readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ReopenableLevel } from './reopenable-level.js';

/** What the store's health says about LevelDB's writes. */
export interface StoreHealth {
  /** `refusing-writes` from a failed write until LevelDB has been reopened. */
  state: 'ok' | 'refusing-writes';
  fault?: { since: string; error: string; diskFull: boolean };
  /** Times LevelDB was reopened after a failed write, since start. */
  reopens: number;
  /** Writes that failed in LevelDB (not counting those refused while it waits to be reopened). */
  writeErrors: number;
}

export interface WriteFaultOptions {
  logger?: Logger | undefined;
  /** Back-off between checks for room while writes are refused: doubles from `retryMinMs` up to `retryMaxMs`. */
  retryMinMs?: number | undefined;
  retryMaxMs?: number | undefined;
  /** Called when writes start being refused (with the error) and when they go through again (undefined). */
  onFault?: ((fault: Error | undefined) => void) | undefined;
}

const DEFAULT_RETRY_MIN_MS = 100;
const DEFAULT_RETRY_MAX_MS = 2_000;
/** While writes are refused, a reminder is logged this often. */
const REMINDER_MS = 10_000;
/**
 * Room needed beyond LevelDB's logs before a reopen is tried: opening turns the logs into a table and writes a
 * new manifest and log, and a reopen that fails leaves the database closed (reads fail too) until the next.
 */
const RESERVE_BYTES = 1024 * 1024;
const DISK_FULL = /ENOSPC|No space left|EDQUOT|quota exceeded/i;

/**
 * Watches the store's LevelDB for a failed write, then waits until the disk has room and reopens it, backing
 * off between checks. Reads go on meanwhile; writes are refused (callers that must write retry).
 */
export class WriteFaultWatch {
  readonly #db: ReopenableLevel;
  readonly #logger: Logger | undefined;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #onFault: WriteFaultOptions['onFault'];
  #sinceMs = 0;
  #reopens = 0;
  #writeErrors = 0;
  #lastLogMs = 0;
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #stopped = false;

  constructor(db: ReopenableLevel, opts: WriteFaultOptions = {}) {
    this.#db = db;
    this.#logger = opts.logger;
    this.#retryMinMs = opts.retryMinMs ?? DEFAULT_RETRY_MIN_MS;
    this.#retryMaxMs = opts.retryMaxMs ?? DEFAULT_RETRY_MAX_MS;
    this.#onFault = opts.onFault;
  }

  /** LevelDB refused a write (ReopenableLevel's hook): from now on it waits for room and is reopened. */
  failed(err: Error): void {
    this.#writeErrors++;
    if (this.#stopped) return;
    this.#sinceMs = Date.now();
    this.#lastLogMs = performance.now();
    this.#logger?.error(
      { err, dir: this.#db.location, diskFull: isDiskFull(err) },
      'STORAGE FAULT: a LevelDB write failed; writes to it (outbox, profiles, audit log) are refused until it is reopened, once the disk has room',
    );
    this.#onFault?.(err);
    this.#running ??= this.#recover().finally(() => {
      this.#running = undefined;
    });
  }

  health(): StoreHealth {
    const refusing = this.#db.refusing;
    const base = { reopens: this.#reopens, writeErrors: this.#writeErrors };
    if (refusing === undefined) return { state: 'ok', ...base };
    return {
      state: 'refusing-writes',
      fault: {
        since: new Date(this.#sinceMs).toISOString(),
        error: refusing.message,
        diskFull: isDiskFull(refusing),
      },
      ...base,
    };
  }

  /** Stops waiting; a reopen in progress is let finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#wake?.();
    await this.#running;
  }

  async #recover(): Promise<void> {
    let delayMs = this.#retryMinMs;
    while (!this.#stopped && this.#db.refusing !== undefined) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#timer = setTimeout(resolve, delayMs);
      });
      this.#wake = undefined;
      if (this.#stopped) return;
      delayMs = Math.min(this.#retryMaxMs, delayMs * 2);
      const room = await roomFor(this.#db.location);
      if (!room.enough) {
        this.#remind({ freeBytes: room.freeBytes, neededBytes: room.neededBytes }, 'still too little room');
        continue;
      }
      try {
        await this.#db.reopen();
      } catch (err) {
        this.#remind({ err }, 'reopening failed');
        continue;
      }
      this.#reopens++;
      this.#logger?.warn(
        { dir: this.#db.location, failedForMs: Date.now() - this.#sinceMs },
        'LevelDB reopened after a failed write: writes go on',
      );
      this.#onFault?.(undefined);
      return;
    }
  }

  #remind(fields: Record<string, unknown>, why: string): void {
    const now = performance.now();
    if (now - this.#lastLogMs < REMINDER_MS) return;
    this.#lastLogMs = now;
    this.#logger?.error(
      { ...fields, dir: this.#db.location, failingForMs: Date.now() - this.#sinceMs },
      `STORAGE FAULT: LevelDB still refuses writes (${why})`,
    );
  }
}

export function isDiskFull(err: Error): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as Error & { code?: unknown }).code;
    if ((typeof code === 'string' && DISK_FULL.test(code)) || DISK_FULL.test(e.message)) return true;
  }
  return false;
}

/** Whether the filesystem of `dir` has room for LevelDB to open: its logs become a table, plus a reserve. */
async function roomFor(dir: string): Promise<{ enough: boolean; freeBytes?: number; neededBytes?: number }> {
  try {
    const fs = await statfs(dir);
    const freeBytes = fs.bavail * fs.bsize;
    let neededBytes = RESERVE_BYTES;
    for (const name of await readdir(dir)) {
      if (name.endsWith('.log')) neededBytes += (await stat(join(dir, name)).catch(() => ({ size: 0 }))).size;
    }
    return { enough: freeBytes >= neededBytes, freeBytes, neededBytes };
  } catch {
    // No way to tell: the reopen itself is the test.
    return { enough: true };
  }
}
