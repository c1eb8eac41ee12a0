/**
 * Where the frames of the journal's records lie until they are synced: record `seq`'s frame is `slabOf(seq)` from
 * `startOf(seq)` to `endOf(seq)`. Kept in parallel arrays of a ring indexed by sequence number, not an object per
 * record: records come and go in order, from `first` to `next - 1`.
 */
export class FrameRing {
  #slabs: Array<Buffer | undefined>;
  #starts: Int32Array;
  #ends: Int32Array;
  #syncs: Uint8Array;
  #mask: number;
  #first: number;
  #count = 0;

  /** `first`: the sequence number the first record pushed will have. */
  constructor(first: number, capacity = 1_024) {
    let size = 16;
    while (size < capacity) size *= 2;
    this.#slabs = new Array<Buffer | undefined>(size).fill(undefined);
    this.#starts = new Int32Array(size);
    this.#ends = new Int32Array(size);
    this.#syncs = new Uint8Array(size);
    this.#mask = size - 1;
    this.#first = first;
  }

  /** The oldest record held (`next` when none is). */
  get first(): number {
    return this.#first;
  }

  /** The sequence number the next record pushed must have. */
  get next(): number {
    return this.#first + this.#count;
  }

  get count(): number {
    return this.#count;
  }

  /** Adds record `seq` (which must be `next`): its frame is `slab` from `start` to `end`. */
  push(seq: number, slab: Buffer, start: number, end: number, sync: boolean): void {
    if (seq !== this.next) throw new RangeError(`frame ${seq} pushed, ${this.next} expected`);
    if (this.#count === this.#slabs.length) this.#grow();
    const i = seq & this.#mask;
    this.#slabs[i] = slab;
    this.#starts[i] = start;
    this.#ends[i] = end;
    this.#syncs[i] = sync ? 1 : 0;
    this.#count++;
  }

  /** Forgets the records held through `seq` (`next` stays where it is). */
  dropThrough(seq: number): void {
    while (this.#count > 0 && this.#first <= seq) {
      // The slab goes once no record holds it.
      this.#slabs[this.#first & this.#mask] = undefined;
      this.#first++;
      this.#count--;
    }
  }

  slabOf(seq: number): Buffer {
    this.#check(seq);
    return this.#slabs[seq & this.#mask] as Buffer;
  }

  startOf(seq: number): number {
    this.#check(seq);
    return this.#starts[seq & this.#mask] as number;
  }

  endOf(seq: number): number {
    this.#check(seq);
    return this.#ends[seq & this.#mask] as number;
  }

  /** The bytes of the frames of records `from` through `through`. */
  bytes(from: number, through: number): number {
    let bytes = 0;
    for (let seq = from; seq <= through; seq++) bytes += this.endOf(seq) - this.startOf(seq);
    return bytes;
  }

  /** Whether any of records `from` through `through` asked for a sync. */
  anySync(from: number, through: number): boolean {
    for (let seq = from; seq <= through; seq++) {
      this.#check(seq);
      if (this.#syncs[seq & this.#mask] === 1) return true;
    }
    return false;
  }

  /** Whether the frames of records `from` through `through` lie end to end in one slab. */
  oneRun(from: number, through: number): boolean {
    const slab = this.slabOf(from);
    for (let seq = from + 1; seq <= through; seq++) {
      if (this.slabOf(seq) !== slab || this.startOf(seq) !== this.endOf(seq - 1)) return false;
    }
    return true;
  }

  /** The frames of records `from` through `through`, one buffer for each run of them that lies end to end in a slab. */
  runs(from: number, through: number): Buffer[] {
    const frames: Buffer[] = [];
    for (let seq = from; seq <= through;) {
      const slab = this.slabOf(seq);
      const start = this.startOf(seq);
      let end = this.endOf(seq);
      for (seq++; seq <= through; seq++) {
        if (this.slabOf(seq) !== slab || this.startOf(seq) !== end) break;
        end = this.endOf(seq);
      }
      frames.push(slab.subarray(start, end));
    }
    return frames;
  }

  #check(seq: number): void {
    if (seq < this.#first || seq >= this.#first + this.#count) {
      throw new RangeError(`frame ${seq} is not held (${this.#first} to ${this.next - 1})`);
    }
  }

  #grow(): void {
    const size = this.#slabs.length * 2;
    const slabs = new Array<Buffer | undefined>(size).fill(undefined);
    const starts = new Int32Array(size);
    const ends = new Int32Array(size);
    const syncs = new Uint8Array(size);
    const mask = size - 1;
    for (let seq = this.#first; seq < this.#first + this.#count; seq++) {
      const from = seq & this.#mask;
      const to = seq & mask;
      slabs[to] = this.#slabs[from];
      starts[to] = this.#starts[from] as number;
      ends[to] = this.#ends[from] as number;
      syncs[to] = this.#syncs[from] as number;
    }
    this.#slabs = slabs;
    this.#starts = starts;
    this.#ends = ends;
    this.#syncs = syncs;
    this.#mask = mask;
  }
}
