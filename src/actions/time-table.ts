const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Entries and key bytes a table starts with, and the least it shrinks to. */
const MIN_ENTRIES = 64;
const MIN_BYTES = 1_024;

/** FNV-1a over `bytes[from, to)`. */
function hashOf(bytes: Uint8Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ (bytes[i] as number), 0x01000193);
  return h >>> 0;
}

/** A lone surrogate: UTF-8 cannot hold it, so two such keys could encode alike. */
const LONE_SURROGATE = /\p{Cs}/u;

function powerOfTwoAtLeast(n: number): number {
  let size = 1;
  while (size < n) size *= 2;
  return size;
}

/**
 * Times by string key, like a `Map<string, number>` in the order keys were first set, kept in typed arrays: the
 * keys' UTF-8 bytes one after the other in one array, the times in another, and an open-addressing index of
 * entry numbers. About 30 bytes an entry with a device id of a dozen characters, where a map entry, its boxed
 * time and the id string it keeps alive take about 100: the arbiter remembers every device that went offline for
 * the exclusive rule's `for` (2 hours in the shipped policy), which at a churn of hundreds of devices a second is
 * millions of entries. Entries leave only through `prune`, which moves the others down and rebuilds the index.
 * A key that is not well-formed UTF-16 (a lone surrogate) is kept in a plain map, so that no two keys are one.
 */
export class TimeTable {
  #count = 0;
  /** Key bytes of entry i are `#bytes[#start[i], #start[i + 1])`. */
  #bytes = new Uint8Array(MIN_BYTES);
  #start = new Uint32Array(MIN_ENTRIES + 1);
  #at = new Float64Array(MIN_ENTRIES);
  /** Entry number + 1 at the slot its key's hash probes to; 0 for an empty slot. At most half full. */
  #index = new Int32Array(MIN_ENTRIES * 2);
  readonly #odd = new Map<string, number>();
  /** The last key looked up, encoded: `#keyBytes[0, #keyLength)`, its hash, and the empty slot it would take. */
  #keyBytes = new Uint8Array(64);
  #keyLength = 0;
  #keyHash = 0;
  #freeSlot = 0;

  get size(): number {
    return this.#count + this.#odd.size;
  }

  get(key: string): number | undefined {
    if (LONE_SURROGATE.test(key)) return this.#odd.get(key);
    const i = this.#find(key);
    return i < 0 ? undefined : this.#at[i];
  }

  set(key: string, at: number): void {
    if (LONE_SURROGATE.test(key)) {
      this.#odd.set(key, at);
      return;
    }
    const i = this.#find(key);
    if (i >= 0) this.#at[i] = at;
    else this.#append(at);
  }

  /** Forgets the entries whose time `gone` says has expired; the others keep their order. */
  prune(gone: (at: number) => boolean): void {
    for (const [key, at] of this.#odd) if (gone(at)) this.#odd.delete(key);
    const bytes = this.#bytes;
    const start = this.#start;
    const times = this.#at;
    let kept = 0;
    let used = 0;
    for (let i = 0; i < this.#count; i++) {
      const at = times[i] as number;
      if (gone(at)) continue;
      const from = start[i] as number;
      const to = start[i + 1] as number;
      if (kept !== i) {
        bytes.copyWithin(used, from, to);
        times[kept] = at;
      }
      start[kept] = used;
      used += to - from;
      kept++;
    }
    if (kept === this.#count) return;
    start[kept] = used;
    this.#count = kept;
    // Shrunk when a quarter or less is used, so that a table that held many entries once does not keep their room.
    const entries = this.#at.length;
    const room = this.#bytes.length;
    this.#resize(
      kept * 4 <= entries ? Math.max(MIN_ENTRIES, kept * 2) : entries,
      used * 4 <= room ? Math.max(MIN_BYTES, used * 2) : room,
      true,
    );
  }

  /** Every entry, in the order its key was first set. */
  *entries(): Generator<[key: string, at: number]> {
    for (let i = 0; i < this.#count; i++) {
      const key = decoder.decode(this.#bytes.subarray(this.#start[i], this.#start[i + 1]));
      yield [key, this.#at[i] as number];
    }
    yield* this.#odd;
  }

  /** Every entry's time, in the order of `entries`, without making its key. */
  *times(): Generator<number> {
    for (let i = 0; i < this.#count; i++) yield this.#at[i] as number;
    yield* this.#odd.values();
  }

  /**
   * The entries as they are now, read later: a copy of the typed arrays (a few tens of bytes an entry) rather than
   * of every key and time as a tuple, for a checkpoint encoded a chunk at a time while the table goes on changing.
   */
  frozenEntries(): Iterable<[key: string, at: number]> {
    const count = this.#count;
    const start = this.#start.slice(0, count + 1);
    const bytes = this.#bytes.slice(0, start[count]);
    const times = this.#at.slice(0, count);
    const odd = [...this.#odd];
    return {
      *[Symbol.iterator]() {
        for (let i = 0; i < count; i++) {
          yield [decoder.decode(bytes.subarray(start[i], start[i + 1])), times[i] as number];
        }
        yield* odd;
      },
    };
  }

  // The entry of `key`, or -1 with the key encoded and the slot it would take noted for `#append`.
  #find(key: string): number {
    if (this.#keyBytes.length < key.length * 3) this.#keyBytes = new Uint8Array(key.length * 3);
    const keyBytes = this.#keyBytes;
    const length = encoder.encodeInto(key, keyBytes).written;
    const hash = hashOf(keyBytes, 0, length);
    this.#keyLength = length;
    this.#keyHash = hash;
    const index = this.#index;
    const mask = index.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = index[slot] as number;
      if (entry === 0) {
        this.#freeSlot = slot;
        return -1;
      }
      const i = entry - 1;
      if (this.#keyIs(i, keyBytes, length)) return i;
    }
  }

  #keyIs(i: number, keyBytes: Uint8Array, length: number): boolean {
    const from = this.#start[i] as number;
    if ((this.#start[i + 1] as number) - from !== length) return false;
    const bytes = this.#bytes;
    for (let k = 0; k < length; k++) if (bytes[from + k] !== keyBytes[k]) return false;
    return true;
  }

  // Adds the key `#find` just missed, with its time.
  #append(at: number): void {
    const length = this.#keyLength;
    const used = this.#start[this.#count] as number;
    const entries = this.#at.length;
    const growEntries = this.#count + 1 > entries;
    const growBytes = used + length > this.#bytes.length;
    if (growEntries || growBytes) {
      this.#resize(
        growEntries ? entries * 2 : entries,
        growBytes ? Math.max(this.#bytes.length * 2, used + length) : this.#bytes.length,
        growEntries,
      );
      if (growEntries) this.#freeSlot = this.#slotFor(this.#keyHash);
    }
    const i = this.#count;
    this.#bytes.set(this.#keyBytes.subarray(0, length), used);
    this.#start[i + 1] = used + length;
    this.#at[i] = at;
    this.#index[this.#freeSlot] = i + 1;
    this.#count = i + 1;
  }

  #slotFor(hash: number): number {
    const index = this.#index;
    const mask = index.length - 1;
    let slot = hash & mask;
    while (index[slot] !== 0) slot = (slot + 1) & mask;
    return slot;
  }

  // New arrays for `entries` entries and `bytes` key bytes (each at least what is kept), and the index built again
  // when its size changes or `reindex`.
  #resize(entries: number, bytes: number, reindex: boolean): void {
    const count = this.#count;
    const used = this.#start[count] as number;
    if (bytes !== this.#bytes.length) {
      const next = new Uint8Array(bytes);
      next.set(this.#bytes.subarray(0, used));
      this.#bytes = next;
    }
    if (entries !== this.#at.length) {
      const start = new Uint32Array(entries + 1);
      start.set(this.#start.subarray(0, count + 1));
      this.#start = start;
      const at = new Float64Array(entries);
      at.set(this.#at.subarray(0, count));
      this.#at = at;
    }
    const slots = powerOfTwoAtLeast(entries * 2);
    if (!reindex && slots === this.#index.length) return;
    this.#index = new Int32Array(slots);
    for (let i = 0; i < count; i++) {
      const hash = hashOf(this.#bytes, this.#start[i] as number, this.#start[i + 1] as number);
      this.#index[this.#slotFor(hash)] = i + 1;
    }
  }
}
