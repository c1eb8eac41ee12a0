/**
 * The `k`th smallest of `values` (0 the smallest), found in linear time on average (Hoare's selection); `values` is
 * reordered. For a bound that forgets the earliest of a million times without sorting them all.
 */
export function kthSmallest(values: Float64Array, k: number): number {
  if (k < 0 || k >= values.length)
    throw new RangeError(`no ${String(k)}th of ${String(values.length)} values`);
  let lo = 0;
  let hi = values.length - 1;
  while (lo < hi) {
    const pivot = values[(lo + hi) >>> 1] as number;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((values[i] as number) < pivot) i++;
      while ((values[j] as number) > pivot) j--;
      if (i <= j) {
        const t = values[i] as number;
        values[i] = values[j] as number;
        values[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return values[k] as number;
  }
  return values[k] as number;
}
