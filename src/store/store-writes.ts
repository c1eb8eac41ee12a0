import type { Sublevel } from './level-types.js';

/**
 * A write as LevelDB takes it: the key with its area's prefix (`!outbox!…`), the value already encoded. In this
 * form it is what abstract-level hands its implementation after encoding a public batch, so it is written without
 * that step (and its copy of every operation).
 */
export type EncodedOp =
  | { type: 'put'; key: string; value: Uint8Array; keyEncoding: 'utf8'; valueEncoding: 'view' }
  | { type: 'del'; key: string; keyEncoding: 'utf8' };

/** Writes encoded operations to the root LevelDB as one atomic batch (`ReopenableLevel.writeEncoded`). */
export type EncodedWrite = (ops: EncodedOp[], sync: boolean) => Promise<void>;

/** The prefix that makes a key of `sublevel` a key of the root. */
export function prefixOf(sublevel: Sublevel<never> | Sublevel<Buffer> | Sublevel): string {
  return sublevel.prefixKey('', 'utf8');
}

export function putOp(key: string, value: Uint8Array): EncodedOp {
  return { type: 'put', key, value, keyEncoding: 'utf8', valueEncoding: 'view' };
}

export function delOp(key: string): EncodedOp {
  return { type: 'del', key, keyEncoding: 'utf8' };
}

interface Turn {
  ops: EncodedOp[];
  sync: boolean;
  readonly done: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * The outboxes' writes of one turn of the event loop, written to LevelDB together: an action that goes upstream and
 * to its device, or a delivery beside a new action, costs one LevelDB call rather than one each (each call, with
 * its thread-pool work and promise, allocates about 1.5 KB however little it writes). The turn's writes share one
 * outcome: written, or failed together. Each outbox keeps its own group commit (and its order) on top of this.
 */
export class StoreWrites {
  readonly #write: EncodedWrite;
  #turn: Turn | undefined;
  readonly #flush = (): void => {
    const turn = this.#turn as Turn;
    this.#turn = undefined;
    this.#write(turn.ops, turn.sync).then(turn.resolve, turn.reject);
  };

  constructor(write: EncodedWrite) {
    this.#write = write;
  }

  /**
   * Writes `ops` (synced when `sync`) with whatever else this turn writes; settles when that batch does. The first
   * writer's array is written as it is, with the later writers' operations appended: it must not be changed after.
   */
  write(ops: EncodedOp[], sync: boolean): Promise<void> {
    const turn = this.#turn;
    if (turn === undefined) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#turn = { ops, sync, done, resolve, reject };
      // After the turn's other callbacks, so that their writes join this batch.
      setImmediate(this.#flush);
      return done;
    }
    for (const op of ops) turn.ops.push(op);
    if (sync) turn.sync = true;
    return turn.done;
  }
}
