/** Writes collected for one LevelDB batch, and what memory must undo if it fails. */
export interface GroupBatch<Op, E> {
  readonly ops: Op[];
  /** Whether the batch must be synced (fdatasync) before it counts as written. */
  sync: boolean;
  /** Entries the batch writes: durable once it is on disk. */
  readonly added: E[];
  /** Entries the batch deletes to make room for `added`. */
  readonly evicted: E[];
  /** Settles once the batch is on disk, or failed. */
  readonly committed: Promise<void>;
}

interface Pending<Op, E> extends GroupBatch<Op, E> {
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Group commit for a LevelDB store: writes arriving while one batch is being written (and synced) share
 * the next batch, so a burst costs one sync rather than one each. A batch's entries are marked durable
 * once it is on disk; when it fails, `rollBack` makes memory follow the disk again before its writers
 * hear of the failure.
 */
export class GroupCommit<Op, E extends { durable: boolean }> {
  readonly #write: (ops: Op[], sync: boolean) => Promise<void>;
  readonly #rollBack: (batch: GroupBatch<Op, E>) => void;
  #pending: Pending<Op, E> | undefined;
  #writing: Promise<void> | undefined;

  constructor(
    write: (ops: Op[], sync: boolean) => Promise<void>,
    rollBack: (batch: GroupBatch<Op, E>) => void,
  ) {
    this.#write = write;
    this.#rollBack = rollBack;
  }

  /** The batch that collects writes until the one being written is done. */
  batch(): GroupBatch<Op, E> {
    if (this.#pending !== undefined) return this.#pending;
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const committed = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Every writer awaits it (or a promise derived from it); this one only must not count as unhandled.
    committed.catch(() => undefined);
    const batch: Pending<Op, E> = {
      ops: [],
      sync: false,
      added: [],
      evicted: [],
      committed,
      resolve,
      reject,
    };
    this.#pending = batch;
    this.#writing ??= this.#writeAll();
    return batch;
  }

  /** Resolves once no batch is waiting or being written. */
  async idle(): Promise<void> {
    while (this.#writing !== undefined) await this.#writing;
  }

  async #writeAll(): Promise<void> {
    try {
      // Let the writers of this tick add to the batch before it is written.
      await Promise.resolve();
      for (let batch = this.#pending; batch !== undefined; batch = this.#pending) {
        this.#pending = undefined;
        try {
          await this.#write(batch.ops, batch.sync);
          for (const entry of batch.added) entry.durable = true;
          batch.resolve();
        } catch (err) {
          this.#rollBack(batch);
          batch.reject(err);
        }
      }
    } finally {
      // At once, in the turn that found nothing pending: a batch made after it (a writer woken by the last one's
      // promise) starts the next writer rather than waiting for one that has ended.
      this.#writing = undefined;
    }
  }
}
