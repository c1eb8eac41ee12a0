import { own, type ComparisonOp, type DataThreshold } from './fast-condition.js';

/** The comparisons a threshold is kept with, the field on the left: `80 < data.temp` as `data.temp > 80`. */
const OP = { '>': 0, '>=': 1, '<': 2, '<=': 3, '==': 4, '!=': 5 } as const;
const MIRRORED: Record<ComparisonOp, ComparisonOp> = {
  '>': '<',
  '>=': '<=',
  '<': '>',
  '<=': '>=',
  '==': '==',
  '!=': '!=',
};

/**
 * What `field op limit` gives for a field that is a number. A plain function of numbers, so that the caller's
 * optimised code inlines it rather than boxing the value for a call per scenario.
 */
function holds(op: number, value: number, limit: number): boolean {
  switch (op) {
    case OP['>']:
      return value > limit;
    case OP['>=']:
      return value >= limit;
    case OP['<']:
      return value < limit;
    case OP['<=']:
      return value <= limit;
    case OP['==']:
      return value === limit;
    default:
      return value !== limit;
  }
}

/** The thresholds of one field and one ordering comparison, by limit: those a value passes are a prefix or a suffix. */
interface Range {
  slot: number;
  op: number;
  /** Ascending. */
  limits: Float64Array;
  /** The listener of each limit. */
  listeners: Int32Array;
}

/**
 * Which of the scenarios listening to an event type an event reaches, when many of them stop at a comparison of one
 * data field with a constant (a hundred scenarios of the `threshold` template): the comparisons of each field with
 * `>`, `>=`, `<` or `<=` are kept sorted by their constant, and an event's value finds the ones it passes by binary
 * search, not one by one. A scenario reached is one whose comparison holds, or whose field is missing or not a
 * number (its kind then goes the whole way, errors included), or that has no such comparison. `select` gives them in
 * listening order: the order their effects come out in.
 */
export class ThresholdIndex {
  /** What `select` found, in its first entries. */
  readonly selected: Int32Array;
  /** The data fields the comparisons read, and their values in the event being selected for. */
  private readonly fields: string[] = [];
  private readonly values: unknown[] = [];
  /** Listeners reached by every event (no comparison), or compared one by one (`==`, `!=`, a limit that is NaN). */
  private readonly always: Int32Array;
  private readonly alwaysSlot: Int32Array;
  private readonly alwaysOp: Uint8Array;
  private readonly alwaysLimit: Float64Array;
  private readonly ranges: Range[] = [];

  /** `thresholds`: per listener, in listening order, its comparison when it stops at one. */
  constructor(thresholds: ReadonlyArray<DataThreshold | undefined>) {
    this.selected = new Int32Array(thresholds.length);
    const always: Array<{ listener: number; slot: number; op: number; limit: number }> = [];
    // By field and comparison: the thresholds of each, to be sorted into a `Range`.
    const ranged = new Map<
      string,
      { slot: number; op: number; list: Array<{ listener: number; limit: number }> }
    >();
    thresholds.forEach((t, listener) => {
      if (t === undefined) {
        always.push({ listener, slot: -1, op: 0, limit: 0 });
        return;
      }
      let slot = this.fields.indexOf(t.field);
      if (slot < 0) slot = this.fields.push(t.field) - 1;
      const op = OP[t.flipped ? MIRRORED[t.op] : t.op];
      const limit = t.constant;
      if (op >= OP['=='] || Number.isNaN(limit)) {
        always.push({ listener, slot, op, limit });
        return;
      }
      const key = `${slot}:${op}`;
      const group = ranged.get(key) ?? { slot, op, list: [] };
      group.list.push({ listener, limit });
      ranged.set(key, group);
    });
    this.always = Int32Array.from(always, (a) => a.listener);
    this.alwaysSlot = Int32Array.from(always, (a) => a.slot);
    this.alwaysOp = Uint8Array.from(always, (a) => a.op);
    this.alwaysLimit = Float64Array.from(always, (a) => a.limit);
    for (const { slot, op, list } of ranged.values()) {
      list.sort((a, b) => a.limit - b.limit || a.listener - b.listener);
      this.ranges.push({
        slot,
        op,
        limits: Float64Array.from(list, (l) => l.limit),
        listeners: Int32Array.from(list, (l) => l.listener),
      });
    }
  }

  /** The listeners `data` reaches, into `selected` in ascending order; returns how many. */
  select(data: unknown): number {
    const { fields, values, selected } = this;
    for (let f = 0; f < fields.length; f++) values[f] = own(data, fields[f] as string);
    let n = 0;
    const { always, alwaysSlot, alwaysOp, alwaysLimit } = this;
    for (let j = 0; j < always.length; j++) {
      const slot = alwaysSlot[j] as number;
      if (slot >= 0) {
        const value = values[slot];
        if (typeof value === 'number' && !holds(alwaysOp[j] as number, value, alwaysLimit[j] as number))
          continue;
      }
      selected[n++] = always[j] as number;
    }
    const sorted = n;
    for (const range of this.ranges) {
      const value = values[range.slot];
      const { limits, listeners } = range;
      let from = 0;
      let to = limits.length;
      if (typeof value === 'number') {
        // NaN passes no comparison; the searches below would place it before every limit.
        if (Number.isNaN(value)) continue;
        switch (range.op) {
          case OP['>']:
            to = firstAtLeast(limits, value);
            break;
          case OP['>=']:
            to = firstAbove(limits, value);
            break;
          case OP['<']:
            from = firstAbove(limits, value);
            break;
          default:
            from = firstAtLeast(limits, value);
        }
      }
      for (let i = from; i < to; i++) selected[n++] = listeners[i] as number;
    }
    if (n > sorted) inOrder(selected, n);
    return n;
  }
}

/** The index of the first limit at or above `value` (`limits.length` when none is). */
function firstAtLeast(limits: Float64Array, value: number): number {
  let lo = 0;
  let hi = limits.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((limits[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The index of the first limit above `value` (`limits.length` when none is). */
function firstAbove(limits: Float64Array, value: number): number {
  let lo = 0;
  let hi = limits.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((limits[mid] as number) <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Sorts the first `n` entries of `a`: by insertion when they are few (an event reaches a handful), else in place. */
function inOrder(a: Int32Array, n: number): void {
  if (n > 32) {
    a.subarray(0, n).sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const x = a[i] as number;
    let j = i - 1;
    while (j >= 0 && (a[j] as number) > x) {
      a[j + 1] = a[j] as number;
      j--;
    }
    a[j + 1] = x;
  }
}
