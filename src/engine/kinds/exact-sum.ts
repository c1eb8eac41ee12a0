/**
 * Exact running sums of doubles (Shewchuk's non-overlapping partials, as in Python's `math.fsum`): the sum is
 * kept exactly as a few doubles, values can be added and taken away again, and the total read from it is the
 * exact sum rounded once. So it depends only on which values are in the sum, not on the order they came and
 * went in: a window's running sum gives what summing the window afresh gives, live or after a restore.
 */

/**
 * Adds `x` to the `count` partials of `partials` from `at` on, in place: the partials that stay are written from `at`
 * on, and the running high part is returned in `carry[0]`. Returns how many stay below it, or -1 when an intermediate
 * sum overflows (values near ±1.8e308).
 */
export function addInto(
  partials: { [index: number]: number },
  count: number,
  x: number,
  carry: Float64Array,
  at = 0,
): number {
  let kept = 0;
  for (let j = 0; j < count; j++) {
    let y = partials[at + j] as number;
    if (Math.abs(x) < Math.abs(y)) {
      const t = x;
      x = y;
      y = t;
    }
    const hi = x + y;
    if (!Number.isFinite(hi)) return -1;
    const lo = y - (hi - x);
    if (lo !== 0) partials[at + kept++] = lo;
    x = hi;
  }
  carry[0] = x;
  return kept;
}

const carried = new Float64Array(1);

/**
 * Adds `x` to the partials in place. Returns false, leaving them unusable, when an intermediate sum overflows
 * (values near ±1.8e308): the caller sums afresh then.
 */
export function addExact(partials: number[], x: number): boolean {
  const kept = addInto(partials, partials.length, x, carried);
  if (kept < 0) return false;
  const top = carried[0] as number;
  // Written in place: emptying the array would let go of its backing store, and the push then make a new one.
  if (kept < partials.length) {
    partials[kept] = top;
    if (partials.length !== kept + 1) partials.length = kept + 1;
  } else partials.push(top);
  return true;
}

/**
 * The exact sum the partials hold (`count` of them from `at` on), rounded to the nearest double (ties to even); 0 rather
 * than -0.
 */
export function exactTotal(partials: ArrayLike<number>, count = partials.length, at = 0): number {
  let n = count;
  if (n === 0) return 0;
  let hi = partials[at + --n] as number;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    const y = partials[at + --n] as number;
    hi = x + y;
    lo = y - (hi - x);
    if (lo !== 0) break;
  }
  // Halfway between two doubles, with more below in the same direction: round away from the tie.
  const below = n > 0 ? partials[at + n - 1] : undefined;
  if (n > 0 && below !== undefined && ((lo < 0 && below < 0) || (lo > 0 && below > 0))) {
    const y = lo * 2;
    const x = hi + y;
    if (y === x - hi) hi = x;
  }
  return hi === 0 ? 0 : hi;
}

/** Partials of `values[from..]` summed afresh; undefined when an intermediate sum overflows. */
export function exactPartials(values: readonly unknown[], from: number): number[] | undefined {
  const partials: number[] = [];
  for (let i = from; i < values.length; i++) if (!addExact(partials, values[i] as number)) return undefined;
  return partials;
}

/** Room for the partials of `exactSum`: doubles need at most about 40 (2,098 binary exponents, 53 bits each). */
const scratch = new Float64Array(64);

/**
 * The exact sum of `values[from..]` rounded once, as `exactTotal(exactPartials(values, from))` gives it, with the
 * partials in a buffer reused from call to call (a small window is summed afresh on every event); undefined when an
 * intermediate sum overflows.
 */
export function exactSum(values: readonly unknown[], from: number): number | undefined {
  let n = 0;
  for (let i = from; i < values.length; i++) {
    const kept = addInto(scratch, n, values[i] as number, carried);
    if (kept < 0) return undefined;
    if (kept === scratch.length) {
      const partials = exactPartials(values, from);
      return partials === undefined ? undefined : exactTotal(partials);
    }
    scratch[kept] = carried[0] as number;
    n = kept + 1;
  }
  return exactTotal(scratch, n);
}
