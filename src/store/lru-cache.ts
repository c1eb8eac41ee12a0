/**
 * A bounded least-recently-used map. Entries sit in numbered slots linked from the least to the most recently
 * used, the links in typed arrays: a hit relinks its slot and allocates nothing (re-inserting into a Map on each
 * hit, as this did, left a deleted entry behind every time, and the Map's table was rebuilt every few thousand
 * hits). Eviction reuses the least recently used slot.
 */
export class LruCache<K, V> {
  readonly #slots = new Map<K, number>();
  #keys: Array<K | undefined> = [];
  #values: Array<V | undefined> = [];
  #older = new Int32Array(0);
  #newer = new Int32Array(0);
  /** The least and the most recently used slot, -1 when empty. */
  #oldest = -1;
  #newest = -1;
  readonly maxEntries: number;

  constructor(maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0) {
      throw new RangeError(`maxEntries must be a non-negative integer, got ${maxEntries}`);
    }
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.#slots.size;
  }

  has(key: K): boolean {
    return this.#slots.has(key);
  }

  /** The value, marked as most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined) return undefined;
    this.#touch(slot);
    return this.#values[slot];
  }

  set(key: K, value: V): void {
    if (this.maxEntries === 0) return;
    const known = this.#slots.get(key);
    if (known !== undefined) {
      this.#values[known] = value;
      this.#touch(known);
      return;
    }
    let slot: number;
    if (this.#slots.size < this.maxEntries) {
      slot = this.#slots.size;
      this.#room(slot + 1);
    } else {
      slot = this.#oldest;
      this.#slots.delete(this.#keys[slot] as K);
      this.#unlink(slot);
    }
    this.#keys[slot] = key;
    this.#values[slot] = value;
    this.#slots.set(key, slot);
    this.#link(slot);
  }

  /** Makes `slot` the most recently used. */
  #touch(slot: number): void {
    if (slot === this.#newest) return;
    this.#unlink(slot);
    this.#link(slot);
  }

  #unlink(slot: number): void {
    const older = this.#older[slot] ?? -1;
    const newer = this.#newer[slot] ?? -1;
    if (older === -1) this.#oldest = newer;
    else this.#newer[older] = newer;
    if (newer === -1) this.#newest = older;
    else this.#older[newer] = older;
  }

  /** Links `slot` in as the most recently used. */
  #link(slot: number): void {
    this.#older[slot] = this.#newest;
    this.#newer[slot] = -1;
    if (this.#newest === -1) this.#oldest = slot;
    else this.#newer[this.#newest] = slot;
    this.#newest = slot;
  }

  /** Links for at least `slots` slots, doubled as the cache fills, never beyond `maxEntries`. */
  #room(slots: number): void {
    if (slots <= this.#older.length) return;
    const length = Math.min(this.maxEntries, Math.max(16, this.#older.length * 2));
    const older = new Int32Array(length);
    const newer = new Int32Array(length);
    older.set(this.#older);
    newer.set(this.#newer);
    this.#older = older;
    this.#newer = newer;
  }
}
