import type { RootLevel, Sublevel } from './level-types.js';
import { storeIo } from './store-io.js';

type Op = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

export interface SessionWritesOptions {
  /** Writes not synced on their own are synced this often (an fdatasync of LevelDB's log). */
  syncIntervalMs: number;
  /** A batch failed (`retryInMs` later it is tried again, with what came since) or went through after failures. */
  onWriteError?: ((err: unknown, retryInMs: number) => void) | undefined;
  onRecovered?: (() => void) | undefined;
}

/** The key the periodic sync writes when nothing else is waiting: a sync needs a write to carry it. */
const SYNC_MARK = 'm!sync';
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 30_000;

/**
 * Write-behind for the MQTT session store: what changes in one turn of the event loop goes to LevelDB as one
 * batch, the last write of each key winning, and a key put and deleted before its batch left is not written
 * at all (a message acknowledged within the turn it was queued in). Batches are not synced on their own:
 * like the journal's records that wait for no fsync, they are synced every `syncIntervalMs` and at `close`.
 * A failed batch is kept (newer writes of the same keys win) and tried again, backing off up to 30 s.
 */
export class SessionWrites {
  readonly #root: RootLevel;
  readonly #level: Sublevel<Buffer>;
  readonly #opts: SessionWritesOptions;
  // Null: delete the key.
  #pending = new Map<string, Buffer | null>();
  // Keys of `#pending` that no earlier batch wrote: deleting one just forgets its put.
  #fresh = new Set<string>();
  #scheduled = false;
  #writing: Promise<void> | undefined;
  #unsynced = false;
  #syncDue = false;
  #retryMs = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #syncTimer: NodeJS.Timeout;
  #closed = false;

  constructor(root: RootLevel, level: Sublevel<Buffer>, opts: SessionWritesOptions) {
    this.#root = root;
    this.#level = level;
    this.#opts = opts;
    this.#syncTimer = setInterval(() => {
      if (!this.#unsynced) return;
      this.#syncDue = true;
      this.#schedule();
    }, opts.syncIntervalMs);
    this.#syncTimer.unref();
  }

  /** Writes `value` under `key`; `fresh`: no earlier value of this key can be on disk. */
  put(key: string, value: Buffer, fresh = false): void {
    if (fresh) this.#fresh.add(key);
    this.#pending.set(key, value);
    this.#schedule();
  }

  del(key: string): void {
    if (this.#fresh.delete(key)) {
      this.#pending.delete(key);
      return;
    }
    this.#pending.set(key, null);
    this.#schedule();
  }

  /** Resolves once everything written so far is on disk (synced when `sync`), or the writes failed. */
  async flush(sync = false): Promise<void> {
    if (sync) this.#syncDue = true;
    this.#scheduled = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    await (this.#writing ??= this.#writeAll());
  }

  /** Writes and syncs what is waiting (trying once more if it failed), then writes nothing more. */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#syncTimer);
    await this.flush(this.#unsynced || this.#pending.size > 0);
    this.#closed = true;
    clearTimeout(this.#retryTimer);
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed || this.#retryTimer !== undefined) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#writing ??= this.#writeAll();
    });
  }

  async #writeAll(): Promise<void> {
    try {
      while (this.#pending.size > 0 || this.#syncDue) {
        if (!(await this.#writeOne())) return;
      }
    } finally {
      this.#scheduled = false;
      this.#writing = undefined;
    }
  }

  // One batch of what is pending; false when it failed (and a retry is set).
  async #writeOne(): Promise<boolean> {
    const batch = this.#pending;
    const sync = this.#syncDue;
    this.#pending = new Map();
    this.#fresh = new Set();
    this.#syncDue = false;
    const ops: Op[] = [];
    for (const [key, value] of batch) {
      ops.push(value === null ? { type: 'del', key } : { type: 'put', key, value });
    }
    if (ops.length === 0) ops.push({ type: 'put', key: SYNC_MARK, value: Buffer.alloc(0) });
    try {
      const level = this.#level;
      await storeIo('writing MQTT sessions', () =>
        this.#root.batch(
          ops.map((op) => ({ ...op, sublevel: level })),
          { sync },
        ),
      );
    } catch (err) {
      // Newer writes of the same keys win over the failed ones.
      for (const [key, value] of batch) if (!this.#pending.has(key)) this.#pending.set(key, value);
      this.#syncDue ||= sync;
      this.#retryMs = Math.min(RETRY_MAX_MS, this.#retryMs === 0 ? RETRY_FIRST_MS : this.#retryMs * 2);
      this.#opts.onWriteError?.(err, this.#retryMs);
      if (!this.#closed) {
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#schedule();
        }, this.#retryMs);
        this.#retryTimer.unref();
      }
      return false;
    }
    this.#unsynced = !sync;
    if (this.#retryMs > 0) {
      this.#retryMs = 0;
      this.#opts.onRecovered?.();
    }
    return true;
  }
}
