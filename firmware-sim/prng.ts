/**
 * A small seeded generator (mulberry32): the same seed gives the same fleet and the same readings on every
 * machine, which `Math.random()` cannot promise.
 */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** An integer in [0, maxExclusive). */
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }

  /** A float in [min, max). */
  between(min: number, max: number): number {
    return min + this.next() * (max - min);
  }
}

/**
 * Derives an independent seed for one stream (profiles, readings, behaviours) of one item, so that a device's
 * profile does not depend on how many devices came before it or on what else was drawn.
 */
export function deriveSeed(seed: number, stream: number, index: number): number {
  return mix32(mix32(seed ^ Math.imul(stream + 1, 0x9e3779b1)) ^ Math.imul(index + 1, 0x85ebca77));
}

/** murmur3's finaliser: spreads nearby inputs over the whole 32-bit range. */
function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Picks `count` distinct items from `items` in a seeded order (a partial Fisher–Yates shuffle). */
export function pickDistinct<T>(items: readonly T[], count: number, rng: Prng): T[] {
  const pool = items.slice();
  const n = Math.min(count, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + rng.int(pool.length - i);
    const a = pool[i] as T;
    pool[i] = pool[j] as T;
    pool[j] = a;
  }
  return pool.slice(0, n);
}
