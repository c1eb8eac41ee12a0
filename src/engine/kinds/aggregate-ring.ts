import type { AggregateState } from './aggregate.js';
import { addExact, addInto, exactTotal } from './exact-sum.js';

/**
 * A window past the packed size, all numbers, kept in one `Float64Array` as a ring: a header (where the oldest entry
 * is, how many there are, the running sums), then the entries, each its arrival time followed by the values of the
 * aggregates that have an argument. A step reads the header and the two ends of the ring, a few cache lines, instead
 * of an object, two arrays, their backing stores and the running sums' arrays; entries that leave cost no copy.
 * Nothing outside the aggregate groups sees it: they read it out as the plain `AggregateState` checkpoints hold.
 */
export type Ring = Float64Array;

/** Where an aggregate scenario's figures sit in its rings. */
export interface RingLayout {
  /** Per aggregate: its value's offset within an entry (1 on), or 0 for `count()`, which keeps none. */
  readonly columnOf: readonly number[];
  /** Per aggregate: for `sum` and `avg`, where its running sum starts in the header (its count of partials, then room for `PARTIALS`); -1 for the others. */
  readonly sumAt: readonly number[];
  /** Numbers per entry. */
  readonly stride: number;
  /** Where the entries start. */
  readonly base: number;
}

const HEAD = 0;
const COUNT = 1;
/**
 * Room for a running sum's partials: values with a few decimals need one to three. A sum that would need more has no
 * running sum (its count is -1) and is summed afresh, exactly, from the entries.
 */
export const PARTIALS = 6;
/** The fewest entries a ring has room for. */
export const MIN_RING = 32;

export function ringLayout(aggregates: ReadonlyArray<{ fn: string; arg?: unknown }>): RingLayout {
  const columnOf: number[] = [];
  const sumAt: number[] = [];
  let columns = 0;
  let sums = 0;
  for (const a of aggregates) {
    columnOf.push(a.arg === undefined ? 0 : ++columns);
    sumAt.push(a.fn === 'sum' || a.fn === 'avg' ? 2 + sums++ * (1 + PARTIALS) : -1);
  }
  return { columnOf, sumAt, stride: 1 + columns, base: 2 + sums * (1 + PARTIALS) };
}

export function ringCount(r: Ring): number {
  return r[COUNT] as number;
}

function capacity(layout: RingLayout, r: Ring): number {
  return (r.length - layout.base) / layout.stride;
}

/** Where the `k`-th oldest entry starts. */
function entryAt(layout: RingLayout, r: Ring, k: number): number {
  const cap = capacity(layout, r);
  let slot = (r[HEAD] as number) + k;
  if (slot >= cap) slot -= cap;
  return layout.base + slot * layout.stride;
}

/** The arrival time of the oldest entry. */
export function oldestAt(layout: RingLayout, r: Ring): number {
  return r[layout.base + (r[HEAD] as number) * layout.stride] as number;
}

/** The arrival time of the newest entry (undefined when there is none). */
export function newestAt(layout: RingLayout, r: Ring): number | undefined {
  const n = ringCount(r);
  return n === 0 ? undefined : r[entryAt(layout, r, n - 1)];
}

/** Aggregate `i`'s value in the `k`-th oldest entry. */
export function ringValue(layout: RingLayout, r: Ring, k: number, i: number): number {
  return r[entryAt(layout, r, k) + (layout.columnOf[i] as number)] as number;
}

/** A ring with room for `cap` entries holding those of `r`, oldest first, and its running sums. */
function resized(layout: RingLayout, r: Ring, cap: number): Ring {
  const { base, stride } = layout;
  const out = new Float64Array(base + cap * stride);
  for (let j = 0; j < base; j++) out[j] = r[j] as number;
  const n = ringCount(r);
  for (let k = 0; k < n; k++) {
    const from = entryAt(layout, r, k);
    const to = base + k * stride;
    for (let j = 0; j < stride; j++) out[to + j] = r[from + j] as number;
  }
  out[HEAD] = 0;
  return out;
}

/**
 * The running sums a step could not keep in its ring, per aggregate: undefined for one kept in the ring (the usual
 * case), else its partials, or null where it overflowed. A sum that needs more partials than the ring has room for
 * goes on here for the rest of the step; once the step is done, `keepSums` writes it back if it fits again, or the
 * window goes on as a plain state with it (`stateOfRing`). Steps change running sums in the ring itself otherwise.
 */
const spilled: Array<number[] | null | undefined> = [];
let anySpilled = false;
const carry = new Float64Array(1);

/** Begins a step of a ring: no running sum of it is kept outside it yet. */
export function beginStep(): void {
  if (!anySpilled) return;
  spilled.length = 0;
  anySpilled = false;
}

/**
 * Adds `x` to aggregate `i`'s running sum, in the ring's header where it fits; one that overflows is dropped (summed
 * afresh when read), as `slide` drops it.
 */
function addTo(layout: RingLayout, r: Ring, i: number, x: number): void {
  const out = spilled[i];
  if (out !== undefined) {
    if (out !== null && !addExact(out, x)) spilled[i] = null;
    return;
  }
  const s = layout.sumAt[i] as number;
  const count = r[s] as number;
  if (count < 0) return;
  const kept = addInto(r, count, x, carry, s + 1);
  if (kept < 0) {
    r[s] = -1;
  } else if (kept < PARTIALS) {
    r[s + 1 + kept] = carry[0] as number;
    r[s] = kept + 1;
  } else {
    const partials = Array.from(r.subarray(s + 1, s + 1 + kept));
    partials.push(carry[0] as number);
    spilled[i] = partials;
    anySpilled = true;
  }
}

/** Takes the oldest entry off, and its values off the running sums. */
export function ringShift(layout: RingLayout, r: Ring): void {
  const at = entryAt(layout, r, 0);
  const { sumAt, columnOf } = layout;
  for (let i = 0; i < sumAt.length; i++)
    if ((sumAt[i] as number) >= 0) addTo(layout, r, i, -(r[at + (columnOf[i] as number)] as number));
  const head = (r[HEAD] as number) + 1;
  r[HEAD] = head === capacity(layout, r) ? 0 : head;
  r[COUNT] = ringCount(r) - 1;
}

/**
 * Adds an entry (its time, and per aggregate its value in `row`) and its values to the running sums. Returns the
 * ring it is in: `r`, or a new one when `r` had no room left, or room for four times the entries it holds.
 */
export function ringPush(layout: RingLayout, r: Ring, at: number, row: readonly unknown[]): Ring {
  const n = ringCount(r);
  const cap = capacity(layout, r);
  if (n === cap) r = resized(layout, r, cap * 2);
  else if (cap > MIN_RING && n * 4 <= cap) r = resized(layout, r, Math.max(MIN_RING, cap >> 1));
  const e = entryAt(layout, r, n);
  r[e] = at;
  const { sumAt, columnOf } = layout;
  for (let i = 0; i < columnOf.length; i++) {
    const c = columnOf[i] as number;
    if (c === 0) continue;
    const v = row[i] as number;
    r[e + c] = v;
    if ((sumAt[i] as number) >= 0) addTo(layout, r, i, v);
  }
  r[COUNT] = n + 1;
  return r;
}

/**
 * Aggregate `i`'s sum over the ring, as the plain state's `windowSum` gives it: from its running sum; where it has
 * none, summed afresh, exactly, and kept as a running sum for a window past `small` entries; an intermediate sum
 * that overflows gives the plain sum, oldest first.
 */
export function ringSum(layout: RingLayout, r: Ring, i: number, small: number): number {
  const out = spilled[i];
  if (out) return exactTotal(out);
  const s = layout.sumAt[i] as number;
  const count = out === undefined ? (r[s] as number) : -1;
  if (count >= 0) return exactTotal(r, count, s + 1);
  const n = ringCount(r);
  const partials = (fresh[i] ??= []);
  partials.length = 0;
  let exact = true;
  for (let k = 0; k < n && exact; k++) exact = addExact(partials, ringValue(layout, r, k, i));
  if (exact) {
    if (n > small) keepFresh(layout, r, i, partials);
    return exactTotal(partials);
  }
  let sum = 0;
  for (let k = 0; k < n; k++) sum += ringValue(layout, r, k, i);
  return sum;
}

/** Partials summed afresh, per aggregate, in arrays reused from step to step. */
const fresh: number[][] = [];

/** Keeps partials summed afresh as aggregate `i`'s running sum: in the ring where they fit, else beside it. */
function keepFresh(layout: RingLayout, r: Ring, i: number, partials: number[]): void {
  const s = layout.sumAt[i] as number;
  if (partials.length <= PARTIALS) {
    for (let j = 0; j < partials.length; j++) r[s + 1 + j] = partials[j] as number;
    r[s] = partials.length;
    spilled[i] = undefined;
  } else {
    spilled[i] = partials.slice();
    anySpilled = true;
  }
}

/**
 * Ends a step of `r`: the running sums it kept beside the ring written back. False when one still has more partials
 * than the ring has room for: the window goes on as a plain state then (`stateOfRing` with `sumsOf`), and the ring's
 * sums are not to be read again.
 */
export function keepSums(layout: RingLayout, r: Ring): boolean {
  if (!anySpilled) return true;
  for (let i = 0; i < spilled.length; i++) if ((spilled[i]?.length ?? 0) > PARTIALS) return false;
  for (let i = 0; i < spilled.length; i++) {
    const out = spilled[i];
    if (out === undefined) continue;
    const s = layout.sumAt[i] as number;
    if (out === null) r[s] = -1;
    else {
      for (let j = 0; j < out.length; j++) r[s + 1 + j] = out[j] as number;
      r[s] = out.length;
    }
  }
  beginStep();
  return true;
}

/** The running sums of the ring stepped last, per aggregate, as a plain state keeps them: those beside it included. */
export function sumsOf(layout: RingLayout, r: Ring): Array<number[] | null> {
  return layout.sumAt.map((s, i) => {
    const out = spilled[i];
    if (out !== undefined) return out?.slice() ?? null;
    const count = s < 0 ? -1 : (r[s] as number);
    return count < 0 ? null : Array.from(r.subarray(s + 1, s + 1 + count));
  });
}

/**
 * The ring of a window's entries from `from` on, with the running sums it has; undefined when an entry is not a
 * number (`first` and `last` take any value) or a running sum has more partials than room. Room for half as many
 * again.
 */
export function ringOf(layout: RingLayout, st: AggregateState, from: number): Ring | undefined {
  const n = st.ats.length - from;
  const { columnOf, sumAt, base, stride } = layout;
  const r = new Float64Array(base + Math.max(MIN_RING, n + (n >> 1)) * stride);
  for (let i = 0; i < columnOf.length; i++) {
    const c = columnOf[i] as number;
    const s = sumAt[i] as number;
    if (s >= 0) {
      const partials = st.sums?.[i];
      if (!Array.isArray(partials)) r[s] = -1;
      else if (partials.length > PARTIALS) return undefined;
      else {
        for (let j = 0; j < partials.length; j++) r[s + 1 + j] = partials[j] as number;
        r[s] = partials.length;
      }
    }
    if (c === 0) continue;
    const col = st.values[i] as unknown[];
    for (let k = 0; k < n; k++) {
      const v = col[from + k];
      if (typeof v !== 'number') return undefined;
      r[base + k * stride + c] = v;
    }
  }
  for (let k = 0; k < n; k++) r[base + k * stride] = st.ats[from + k] as number;
  r[HEAD] = 0;
  r[COUNT] = n;
  return r;
}

/**
 * The plain state of a ring, in arrays of its own: as checkpoints hold it, with its running sums (`sums` when given:
 * those of a step that left one beside the ring, `sumsOf`).
 */
export function stateOfRing(
  layout: RingLayout,
  r: Ring,
  noValues: unknown[],
  sums?: Array<number[] | null>,
): AggregateState {
  const n = ringCount(r);
  const ats = new Array<number>(n);
  for (let k = 0; k < n; k++) ats[k] = r[entryAt(layout, r, k)] as number;
  const values = layout.columnOf.map((c, i) => {
    if (c === 0) return noValues;
    const col = new Array<number>(n);
    for (let k = 0; k < n; k++) col[k] = ringValue(layout, r, k, i);
    return col;
  });
  const st: AggregateState = { ats, values, start: 0 };
  if (layout.sumAt.some((s) => s >= 0)) {
    st.sums =
      sums ??
      layout.sumAt.map((s) => {
        const count = s < 0 ? -1 : (r[s] as number);
        return count < 0 ? null : Array.from(r.subarray(s + 1, s + 1 + count));
      });
  }
  return st;
}
