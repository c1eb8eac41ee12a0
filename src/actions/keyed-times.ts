import { TimeTable } from './time-table.js';

/** `["a","b"]` and `"c"` → `["a","b","c"]`: the JSON of the parts, as `JSON.stringify` writes it. */
export function joinKey(head: string, last: string): string {
  return `${head.length > 2 ? `${head.slice(0, -1)},` : '['}${JSON.stringify(last)}]`;
}

/** The parts of a key written as the JSON of a list of strings; undefined for any other key. */
function splitKey(key: string): { head: string; last: string } | undefined {
  let parts: unknown;
  try {
    parts = JSON.parse(key);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parts) || parts.length === 0 || !parts.every((p) => typeof p === 'string'))
    return undefined;
  if (JSON.stringify(parts) !== key) return undefined;
  return { head: JSON.stringify(parts.slice(0, -1)), last: parts[parts.length - 1] as string };
}

/**
 * Times by keys made of string parts, such as `["actor","device-offline","d1"]` (the arbiter's keys, as its state
 * writes them). Kept by the key's last part (a device id) under the JSON of the others (a few, shared by many keys),
 * in a `TimeTable` per head: a key costs about 30 bytes, its last part's UTF-8 bytes included, and no string of its
 * own; the whole key is written only when the entries are read out (a checkpoint). A key that is not such a list is
 * kept as it is.
 */
export class KeyedTimes {
  private readonly byHead = new Map<string, TimeTable>();
  private readonly other = new Map<string, number>();

  get(head: string, last: string): number | undefined {
    return this.byHead.get(head)?.get(last);
  }

  set(head: string, last: string, at: number): void {
    let lasts = this.byHead.get(head);
    if (lasts === undefined) this.byHead.set(head, (lasts = new TimeTable()));
    lasts.set(last, at);
  }

  /** Sets the time of a whole key (`joinKey` of its parts) to `at`, or keeps a later one when `latest`. */
  setKey(key: string, at: number, latest = false): void {
    const split = splitKey(key);
    const before = split === undefined ? this.other.get(key) : this.get(split.head, split.last);
    const value = latest && before !== undefined ? Math.max(before, at) : at;
    if (split === undefined) this.other.set(key, value);
    else this.set(split.head, split.last, value);
  }

  /** Forgets the entries `gone` says have expired. */
  prune(gone: (at: number) => boolean): void {
    for (const [head, lasts] of this.byHead) {
      lasts.prune(gone);
      if (lasts.size === 0) this.byHead.delete(head);
    }
    for (const [key, at] of this.other) if (gone(at)) this.other.delete(key);
  }

  get size(): number {
    let n = this.other.size;
    for (const lasts of this.byHead.values()) n += lasts.size;
    return n;
  }

  /** Every key, whole, with its time, as they are now (see `TimeTable.frozenEntries`), read later. */
  frozenEntries(): Iterable<[key: string, at: number]> {
    const heads = [...this.byHead].map(([head, lasts]) => [head, lasts.frozenEntries()] as const);
    const other = [...this.other];
    return {
      *[Symbol.iterator]() {
        for (const [head, lasts] of heads) for (const [last, at] of lasts) yield [joinKey(head, last), at];
        yield* other;
      },
    };
  }

  /** Every entry's time, without making its key. */
  *times(): Generator<number> {
    for (const lasts of this.byHead.values()) yield* lasts.times();
    yield* this.other.values();
  }

  /** Every key, whole, with its time. */
  *entries(): Generator<[key: string, at: number]> {
    for (const [head, lasts] of this.byHead)
      for (const [last, at] of lasts.entries()) yield [joinKey(head, last), at];
    yield* this.other;
  }
}
