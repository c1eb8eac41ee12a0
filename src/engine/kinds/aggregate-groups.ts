import { GroupsAtInstant } from '../groups-at-instant.js';
import type { GroupsView, ViewableGroups } from '../state.js';
import type { AggregateState } from './aggregate.js';
import { newestAt, stateOfRing } from './aggregate-ring.js';
import type { Ring, RingLayout } from './aggregate-ring.js';

/** A small window packed: its times, then each column with values, in one array of numbers of its exact length. */
type Packed = number[];

/** What the groups store for a group: the plain state, a small window packed, or a larger one in a ring. */
type Stored = AggregateState | Packed | Ring;

/** Whether what is stored is the plain state, the one that may be handed out and changed in place. */
function isPlain(st: Stored): st is AggregateState {
  return !Array.isArray(st) && !(st instanceof Float64Array);
}

/**
 * An aggregate scenario's groups, a small window packed into one array of numbers: its arrival times, then the values
 * of each aggregate that has an argument (`count()` has none), instead of an object and three arrays. Any other state
 * (running sums, values that are not numbers, entries that left the window) is kept as it is. It reads and writes
 * like a `Map` of `AggregateState`s: `get` and iteration make the plain state (the one checkpoints hold), `set` packs
 * it when it can, so nothing outside the aggregate kind sees the difference. A state read with `get` and changed must
 * be `set` again. The kind's event path reads with `forUpdate` instead, which makes no state per event.
 *
 * A checkpoint's `view` (see `GroupsAtInstant`): while it lasts, a packed window it still needs is packed again into a
 * new array, not into its own, a state that is not packed (changed in place by the kind) is copied for it before it
 * is handed out, and what is stored over or deleted is kept for it as it is.
 *
 * With a `layout`, a window past the packed size, all numbers, may be kept in a ring (see aggregate-ring.ts) that the
 * kind's event path changes in place (`forStep`, `storeRing`); `get` and iteration read it out as a plain state, its
 * running sums included.
 */
export class AggregateGroups implements Map<string, AggregateState>, ViewableGroups {
  private readonly states = new Map<string, Stored>();
  private instant: GroupsAtInstant<Stored> | undefined;
  /**
   * The state `forUpdate` hands out for a packed window: its arrays reused from one event to the next, so reading a
   * small window to add an entry makes nothing but the packed array `set` stores.
   */
  private readonly scratch: AggregateState;
  private scratchOut = false;
  /** The stored state (not packed) `forUpdate` last handed out, and its group: `set` of it again may store nothing. */
  private handed: AggregateState | undefined;
  private handedGroup = '';

  /** `columns[i]`: whether aggregate `i` keeps values (has an argument); `noValues`, the column of one that does not. */
  constructor(
    private readonly columns: readonly boolean[],
    private readonly noValues: unknown[],
    private readonly maxPacked: number,
    readonly layout?: RingLayout,
  ) {
    this.scratch = { ats: [], values: columns.map((has) => (has ? [] : noValues)), start: 0 };
  }

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
    if (st === undefined) return undefined;
    if (isPlain(st)) this.keep(group, st);
    return this.unpack(st);
  }

  /** Keeps the group's window in `ring` (one the caller made, or grew): set, for a ring. */
  storeRing(group: string, ring: Ring): void {
    this.handed = undefined;
    if (this.instant !== undefined) this.replacing(group);
    if (this.scratchOut) {
      this.scratchOut = false;
      this.resetScratch();
    }
    this.states.set(group, ring);
  }

  /**
   * The group's state to change and `set` again before anything else reads the groups (the aggregate kind's event
   * path): a packed window is read into a state whose arrays are reused, which `set` packs again (or copies, when it
   * no longer packs); any other state is the one kept, as `get` gives it. The arrays of a reused state may be changed
   * in place, and are not of their exact length.
   */
  forUpdate(group: string): AggregateState | undefined {
    return this.forStep(group, false) as AggregateState | undefined;
  }

  /**
   * As `forUpdate`, but with `rings`, a window kept in a ring is handed out as it is, to change in place (a view taken
   * before keeps the state it had) and `storeRing` when it is a new one; one lookup of the group either way.
   */
  forStep(group: string, rings: boolean): AggregateState | Ring | undefined {
    const st = this.states.get(group);
    if (st instanceof Float64Array) {
      this.handed = undefined;
      if (rings && this.instant !== undefined) this.keep(group, st);
      // Otherwise read out into a state of its own: `set` stores it over the ring.
      return rings ? st : this.unpack(st);
    }
    if (!Array.isArray(st)) {
      if (st !== undefined) {
        this.keep(group, st);
        this.handed = st;
        this.handedGroup = group;
      }
      return st;
    }
    this.handed = undefined;
    const out = this.scratch;
    const kept = this.kept();
    const n = st.length / (1 + kept);
    fill(out.ats, st, 0, n);
    let k = n;
    for (let i = 0; i < this.columns.length; i++) {
      if (this.columns[i] !== true) continue;
      fill(out.values[i] as unknown[], st, k, n);
      k += n;
    }
    out.start = 0;
    this.scratchOut = true;
    return out;
  }

  /** Whether `st` is the reused state `forUpdate` handed out: one the caller may change in place. */
  isReused(st: AggregateState): boolean {
    return st === this.scratch && this.scratchOut;
  }

  set(group: string, st: AggregateState): this {
    const handed = st === this.handed && group === this.handedGroup;
    this.handed = undefined;
    // Changed in place where it is stored, and it does not pack: nothing to store (the view kept it when handed out).
    if (handed && ((st.start ?? 0) !== 0 || st.sums !== undefined || st.ats.length > this.maxPacked))
      return this;
    const before = st === this.scratch ? this.states.get(group) : undefined;
    // A packed array the view needs stays as it is: the window is packed into a new one.
    const into = Array.isArray(before) && this.instant?.needs(group) !== true ? before : undefined;
    const packed = this.pack(st, into);
    if (this.instant !== undefined) this.replacing(group);
    if (st === this.scratch) {
      this.scratchOut = false;
      this.states.set(group, packed ?? copyOf(st, this.noValues));
      this.resetScratch();
      return this;
    }
    this.states.set(group, packed ?? st);
    return this;
  }

  delete(group: string): boolean {
    this.handed = undefined;
    if (this.instant !== undefined) this.replacing(group);
    return this.states.delete(group);
  }

  clear(): void {
    this.handed = undefined;
    if (this.instant !== undefined) for (const group of this.states.keys()) this.replacing(group);
    this.states.clear();
  }

  forEach(
    fn: (st: AggregateState, group: string, map: Map<string, AggregateState>) => void,
    thisArg?: unknown,
  ): void {
    for (const [group, st] of this) fn.call(thisArg, st, group, this);
  }

  *entries(): MapIterator<[string, AggregateState]> {
    for (const [group, st] of this.states) {
      if (isPlain(st)) this.keep(group, st);
      yield [group, this.unpack(st)];
    }
  }

  keys(): MapIterator<string> {
    return this.states.keys();
  }

  *values(): MapIterator<AggregateState> {
    for (const [, st] of this.entries()) yield st;
  }

  [Symbol.iterator](): MapIterator<[string, AggregateState]> {
    return this.entries();
  }

  /** The groups as of now, for a checkpoint: see the class. */
  view(): GroupsView {
    if (this.instant !== undefined) throw new Error('the groups have a view already');
    const unpack = (st: Stored): AggregateState => this.unpack(st);
    const instant = new GroupsAtInstant(
      [...this.states.keys()],
      [...this.states.values()],
      unpack,
      unpack,
      () => {
        if (this.instant === instant) this.instant = undefined;
      },
    );
    this.instant = instant;
    return instant.view();
  }

  /** A state (not packed) about to be handed out, which the caller may change: the view keeps a copy. */
  private keep(group: string, st: AggregateState | Ring): void {
    this.instant?.handingOut(group, () =>
      st instanceof Float64Array ? this.unpack(st) : copyState(st, this.noValues),
    );
  }

  /** What the groups hold for `group` is about to be stored over or deleted: the view keeps it as it is. */
  private replacing(group: string): void {
    const st = this.states.get(group);
    if (st !== undefined) this.instant?.replacing(group, st);
  }

  /**
   * The packed form of a state that has one: a window of at most `maxPacked` entries, all numbers, nothing else.
   * Written into `into` when it is of the length needed (the group's packed array, which nothing else holds).
   */
  private pack(st: AggregateState, into?: Packed): Packed | undefined {
    const n = st.ats.length;
    if (n > this.maxPacked || (st.start ?? 0) !== 0 || st.sums !== undefined) return undefined;
    // The reused state has no other key (`sums` is checked above).
    const keys = st === this.scratch ? 3 : Object.keys(st).length;
    if (keys !== 3 || st.values.length !== this.columns.length) return undefined;
    let kept = 0;
    for (let i = 0; i < this.columns.length; i++) {
      const col = st.values[i] as unknown[];
      if (this.columns[i] === true) {
        if (col.length !== n || !allNumbers(col, n)) return undefined;
        kept++;
      } else if (col.length !== 0) return undefined;
    }
    if (!allNumbers(st.ats, n, false)) return undefined;
    const packed: Packed = into?.length === n * (1 + kept) ? into : new Array<number>(n * (1 + kept));
    let k = 0;
    for (let j = 0; j < n; j++) packed[k++] = st.ats[j] as number;
    for (let i = 0; i < this.columns.length; i++) {
      if (this.columns[i] !== true) continue;
      const col = st.values[i] as number[];
      for (let j = 0; j < n; j++) packed[k++] = col[j] as number;
    }
    return packed;
  }

  /** The reused state back to its shape: the columns that keep no values are the shared empty one again. */
  private resetScratch(): void {
    const out = this.scratch;
    delete out.sums;
    for (let i = 0; i < this.columns.length; i++) if (this.columns[i] !== true) out.values[i] = this.noValues;
  }

  /** How many aggregates keep values. */
  private kept(): number {
    let kept = 0;
    for (let i = 0; i < this.columns.length; i++) if (this.columns[i] === true) kept++;
    return kept;
  }

  /** Forgets the groups whose newest entry came before `from`, read without making their plain states. */
  pruneBefore(from: number): void {
    for (const [group, st] of this.states) {
      let newest: number | undefined;
      if (st instanceof Float64Array) newest = newestAt(this.layout as RingLayout, st);
      else if (Array.isArray(st)) newest = st[st.length / (1 + this.kept()) - 1];
      else newest = st.ats[st.ats.length - 1];
      if (newest === undefined || newest < from) this.delete(group);
    }
  }

  private unpack(st: Stored): AggregateState {
    if (st instanceof Float64Array) return stateOfRing(this.layout as RingLayout, st, this.noValues);
    if (!Array.isArray(st)) return st;
    const kept = this.kept();
    const n = st.length / (1 + kept);
    let k = n;
    const values = this.columns.map((has) => (has ? st.slice(k, (k += n)) : this.noValues));
    return { ats: st.slice(0, n), values, start: 0 };
  }
}

/** Whether the first `n` entries are numbers; with `values`, none of them -0 (a checkpoint keeps no -0 value). */
function allNumbers(list: readonly unknown[], n: number, values = true): boolean {
  for (let j = 0; j < n; j++) {
    const v = list[j];
    if (typeof v !== 'number' || (values && Object.is(v, -0))) return false;
  }
  return true;
}

/** `to` holds `n` numbers of `from` from `start` on (its length set to `n`, its backing store kept when it can be). */
function fill(to: unknown[], from: Packed, start: number, n: number): void {
  for (let k = 0; k < n; k++) to[k] = from[start + k];
  if (to.length !== n) to.length = n;
}

/** A state with arrays of its own, its keys in the same order: what the kind may change in place, copied. */
function copyState(st: AggregateState, noValues: unknown[]): AggregateState {
  const out = { ...st };
  out.ats = st.ats.slice();
  out.values = st.values.map((col) => (col === noValues ? col : col.slice()));
  if (st.sums !== undefined) out.sums = st.sums.map((partials) => partials?.slice() ?? null);
  return out;
}

/**
 * The reused state in arrays of its own, of their exact length, its keys in the same order (checkpoints write them
 * in it): the reused one is never kept. Its running sums were made for it, and move over.
 */
function copyOf(st: AggregateState, noValues: unknown[]): AggregateState {
  const out: AggregateState = {
    ats: st.ats.slice(),
    values: st.values.map((col) => (col === noValues ? col : col.slice())),
  };
  if (st.start !== undefined) out.start = st.start;
  if (st.sums !== undefined) out.sums = st.sums;
  return out;
}
