import type { AggregateState } from './aggregate.js';

/** A small window packed: its times, then each column with values, in one array of numbers of its exact length. */
type Packed = number[];

/**
 * An aggregate scenario's groups, a small window packed into one array of numbers: its arrival times, then the values
 * of each aggregate that has an argument (`count()` has none), instead of an object and three arrays. Any other state
 * (running sums, values that are not numbers, entries that left the window) is kept as it is. It reads and writes
 * like a `Map` of `AggregateState`s: `get` and iteration make the plain state (the one checkpoints hold), `set` packs
 * it when it can, so nothing outside the aggregate kind sees the difference. A state read with `get` and changed must
 * be `set` again.
 */
export class AggregateGroups implements Map<string, AggregateState> {
  private readonly states = new Map<string, AggregateState | Packed>();

  /** `columns[i]`: whether aggregate `i` keeps values (has an argument); `noValues`, the column of one that does not. */
  constructor(
    private readonly columns: readonly boolean[],
    private readonly noValues: unknown[],
    private readonly maxPacked: number,
  ) {}

  get size(): number {
    return this.states.size;
  }

  get [Symbol.toStringTag](): string {
    return 'AggregateGroups';
  }

  has(group: string): boolean {
    return this.states.has(group);
  }

  get(group: string): AggregateState | undefined {
    const st = this.states.get(group);
    return st === undefined ? undefined : this.unpack(st);
  }

  set(group: string, st: AggregateState): this {
    this.states.set(group, this.pack(st) ?? st);
    return this;
  }

  delete(group: string): boolean {
    return this.states.delete(group);
  }

  clear(): void {
    this.states.clear();
  }

  forEach(
    fn: (st: AggregateState, group: string, map: Map<string, AggregateState>) => void,
    thisArg?: unknown,
  ): void {
    for (const [group, st] of this) fn.call(thisArg, st, group, this);
  }

  *entries(): MapIterator<[string, AggregateState]> {
    for (const [group, st] of this.states) yield [group, this.unpack(st)];
  }

  keys(): MapIterator<string> {
    return this.states.keys();
  }

  *values(): MapIterator<AggregateState> {
    for (const st of this.states.values()) yield this.unpack(st);
  }

  [Symbol.iterator](): MapIterator<[string, AggregateState]> {
    return this.entries();
  }

  /** The packed form of a state that has one: a window of at most `maxPacked` entries, all numbers, nothing else. */
  private pack(st: AggregateState): Packed | undefined {
    const n = st.ats.length;
    if (n > this.maxPacked || (st.start ?? 0) !== 0 || st.sums !== undefined) return undefined;
    if (Object.keys(st).length !== 3 || st.values.length !== this.columns.length) return undefined;
    let kept = 0;
    for (let i = 0; i < this.columns.length; i++) {
      const col = st.values[i] as unknown[];
      if (this.columns[i] === true) {
        if (col.length !== n) return undefined;
        kept++;
      } else if (col.length !== 0) return undefined;
    }
    const packed: Packed = new Array<number>(n * (1 + kept));
    let k = 0;
    for (const at of st.ats) {
      if (typeof at !== 'number') return undefined;
      packed[k++] = at;
    }
    for (let i = 0; i < this.columns.length; i++) {
      if (this.columns[i] !== true) continue;
      for (const v of st.values[i] as unknown[]) {
        if (typeof v !== 'number' || Object.is(v, -0)) return undefined;
        packed[k++] = v;
      }
    }
    return packed;
  }

  private unpack(st: AggregateState | Packed): AggregateState {
    if (!Array.isArray(st)) return st;
    const kept = this.columns.filter(Boolean).length;
    const n = st.length / (1 + kept);
    let k = n;
    const values = this.columns.map((has) => (has ? st.slice(k, (k += n)) : this.noValues));
    return { ats: st.slice(0, n), values, start: 0 };
  }
}
