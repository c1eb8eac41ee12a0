import type { AbstractBatchOperation } from 'abstract-level';
import { Level } from 'level';
import { StoreIoError } from '../shared/index.js';
import type { EncodedOp } from './store-writes.js';

/**
 * The methods of abstract-level's implementer API (documented there, not typed by `level`) that this class
 * wraps. Every write of the root and of its sublevels ends in one of them, with keys already prefixed.
 */
interface Implementation {
  _open(options: object): Promise<void>;
  _close(): Promise<void>;
  _put(key: unknown, value: unknown, options: object): Promise<void>;
  _del(key: unknown, options: object): Promise<void>;
  _batch(operations: unknown[], options: object): Promise<void>;
  _clear(options: object): Promise<void>;
}

const native = Level.prototype as unknown as Implementation;

/** Something that can be closed and opened again: the sublevels hanging off the root. */
interface Reopenable {
  readonly status: string;
  open(): Promise<void>;
  readonly hooks: { newsub: { add(fn: (sublevel: Reopenable) => void): void } };
}

/**
 * The store's root LevelDB, which can be closed and opened again under the same handles.
 *
 * After a failed write LevelDB cannot be trusted to go on: a failed memtable flush or compaction (a full
 * disk) leaves a background error that fails every later write until the database is reopened, and a write
 * cut short in its log can leave the records after it unreadable at the next open. So the first failed
 * write stops all writes (they are refused at once, reads go on) until `reopen`, which replays the log into
 * a fresh one. The root and every sublevel made from it, directly or not, stay the same objects across a
 * reopen, so ProfileStore, Outbox, AuditLog, CredentialStore and the rest keep the handles they were given.
 */
export class ReopenableLevel extends Level<string, unknown> {
  #refusing: Error | undefined;
  /** Set while `close` is part of a reopen: the native database stays open until `_open` replaces it. */
  #swapping = false;
  #nativeOpen = false;
  readonly #sublevels = new Set<WeakRef<Reopenable>>();
  readonly #onWriteError: (err: Error) => void;

  constructor(
    location: string,
    options: ConstructorParameters<typeof Level<string, unknown>>[1],
    onWriteError: (err: Error) => void,
  ) {
    super(location, options);
    this.#onWriteError = onWriteError;
    const track = (sublevel: Reopenable): void => {
      this.#sublevels.add(new WeakRef(sublevel));
      sublevel.hooks.newsub.add(track);
    };
    (this.hooks as unknown as Reopenable['hooks']).newsub.add(track);
  }

  /** The failed write that stopped writes until a reopen; undefined while writes go through. */
  get refusing(): Error | undefined {
    return this.#refusing;
  }

  /**
   * Closes LevelDB and opens it again (its log is replayed into a fresh one), under the same root and
   * sublevel objects. Operations started meanwhile wait for the open, as they do at start-up; if the open
   * fails, the database stays closed and the error is thrown (call again later).
   */
  async reopen(): Promise<void> {
    this.#swapping = true;
    try {
      // Closes iterators and sublevels; the native handle is closed at the start of `_open`, so that
      // LevelDB's own close (which waits for a running compaction) happens while operations are deferred.
      await this.close();
    } finally {
      this.#swapping = false;
    }
    // Both start synchronously: from here the root and its sublevels are `opening`, and calls on them wait.
    const opened = this.open({ createIfMissing: false });
    const sublevels: Array<Promise<void>> = [];
    for (const ref of this.#sublevels) {
      const sublevel = ref.deref();
      if (sublevel === undefined) this.#sublevels.delete(ref);
      else if (sublevel.status === 'closed') sublevels.push(sublevel.open());
    }
    await opened;
    // A sublevel that failed to open is tried again by the next reopen; the root is what counts.
    await Promise.allSettled(sublevels);
  }

  async _open(options: object): Promise<void> {
    if (this.#nativeOpen) {
      this.#nativeOpen = false;
      await native._close.call(this);
    }
    await native._open.call(this, options);
    this.#nativeOpen = true;
    this.#refusing = undefined;
  }

  async _close(): Promise<void> {
    if (this.#swapping || !this.#nativeOpen) return;
    this.#nativeOpen = false;
    await native._close.call(this);
  }

  _put(key: unknown, value: unknown, options: object): Promise<void> {
    return this.#write(() => native._put.call(this, key, value, options));
  }

  _del(key: unknown, options: object): Promise<void> {
    return this.#write(() => native._del.call(this, key, options));
  }

  _batch(operations: unknown[], options: object): Promise<void> {
    return this.#write(() => native._batch.call(this, operations, options));
  }

  /**
   * Writes operations already in the form `_batch` takes (keys prefixed, values encoded) as one batch, without
   * abstract-level's encoding of a public batch. While the database is not open (a reopen), or when something
   * listens to its writes (a `write` listener, a prewrite hook), they go through the public `batch` instead.
   */
  writeEncoded(ops: EncodedOp[], sync: boolean): Promise<void> {
    const hooks = this.hooks as unknown as { prewrite: { noop: boolean } };
    if (this.status !== 'open' || !hooks.prewrite.noop || this.listenerCount('write') > 0) {
      return this.batch(ops as unknown as Array<AbstractBatchOperation<this, string, unknown>>, { sync });
    }
    return this.#write(() => native._batch.call(this, ops, { sync }));
  }

  _clear(options: object): Promise<void> {
    return this.#write(() => native._clear.call(this, options));
  }

  async #write(operation: () => Promise<void>): Promise<void> {
    const refusing = this.#refusing;
    if (refusing !== undefined) {
      throw new StoreIoError(
        `LevelDB takes no writes until it is reopened, after a failed write (${refusing.message})`,
        { cause: refusing },
      );
    }
    try {
      await operation();
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (this.#refusing === undefined) {
        this.#refusing = error;
        this.#onWriteError(error);
      }
      throw err;
    }
  }
}
