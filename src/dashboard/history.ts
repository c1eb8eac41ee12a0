/** The figures each point of the history holds; NaN where there was nothing to measure. */
export const HISTORY_FIELDS = [
  /** Events accepted, per second. */
  'eventsIn',
  /** Actions per second by what became of them. */
  'sent',
  'suppressed',
  'expired',
  'dropped',
  /** Event → decision latency of the sent actions, in ms. */
  'p50Ms',
  'p99Ms',
  /** Actions waiting for the uplink, and how long the oldest of them has waited (ms). */
  'outboxDepth',
  'outboxOldestMs',
  /** 1 connected, 0 disconnected, NaN when no upstream is configured. */
  'uplink',
  /** Devices connected to the broker. */
  'connected',
] as const;

export type HistoryField = (typeof HISTORY_FIELDS)[number];
export type HistoryPoint = Record<HistoryField, number>;

/** Each tier is a fixed ring: 5 s points for the last hour, 1 min points for the last day (about 200 kB in all). */
export const FINE_STEP_MS = 5_000;
export const FINE_POINTS = 720;
export const COARSE_STEP_MS = 60_000;
export const COARSE_POINTS = 1_440;

/** What `/api/history` answers: one column per field, oldest first; null where nothing was measured. */
export interface HistorySeries {
  stepMs: number;
  fromAt: number;
  toAt: number;
  /** When each point ends (ms since the epoch). */
  at: number[];
  series: Record<HistoryField, Array<number | null>>;
}

/** A fixed ring of points, one typed column per field: its memory is set at construction. */
export class PointRing {
  private readonly at: Float64Array;
  private readonly columns: Record<HistoryField, Float64Array>;
  private next = 0;
  private filled = 0;

  constructor(readonly capacity: number) {
    this.at = new Float64Array(capacity);
    this.columns = Object.fromEntries(HISTORY_FIELDS.map((f) => [f, new Float64Array(capacity)])) as Record<
      HistoryField,
      Float64Array
    >;
  }

  get size(): number {
    return this.filled;
  }

  /** Bytes the ring holds, whatever it has been fed. */
  get bytes(): number {
    return this.at.byteLength * (HISTORY_FIELDS.length + 1);
  }

  push(at: number, point: HistoryPoint): void {
    const i = this.next;
    this.at[i] = at;
    for (const f of HISTORY_FIELDS) this.columns[f][i] = point[f];
    this.next = (i + 1) % this.capacity;
    this.filled = Math.min(this.filled + 1, this.capacity);
  }

  /** Points that end after `fromAt`, oldest first, into `out`. */
  readInto(fromAt: number, out: { at: number[]; series: HistorySeries['series'] }): void {
    for (let k = this.filled; k >= 1; k--) {
      const i = (this.next - k + this.capacity) % this.capacity;
      const at = this.at[i] ?? 0;
      if (at <= fromAt) continue;
      out.at.push(at);
      for (const f of HISTORY_FIELDS) out.series[f].push(finite(this.columns[f][i]));
    }
  }
}

/**
 * The gateway's recent history, kept in memory: every 5 s point for the last hour, and one point a minute
 * for the last day, each minute made from its 5 s points. A minute's rates and its gauges' worst are what
 * its 5 s points had: rates averaged, outbox depth and oldest age at their highest, the uplink down if it
 * was down at any point, connected devices at the minute's end; its p50 is the median of the 5 s p50s
 * and its p99 the highest 5 s p99 (percentiles cannot be merged exactly without their samples).
 */
export class History {
  readonly fine = new PointRing(FINE_POINTS);
  readonly coarse = new PointRing(COARSE_POINTS);
  /** The 5 s points of the minute not yet closed. */
  private minute: { index: number; lastAt: number; points: HistoryPoint[] } | undefined;

  /** Adds the 5 s point that ends at `at`; a minute closes when the first point of the next one comes. */
  add(at: number, point: HistoryPoint): void {
    this.fine.push(at, point);
    const index = Math.floor((at - 1) / COARSE_STEP_MS);
    if (this.minute && this.minute.index !== index) this.closeMinute();
    this.minute ??= { index, lastAt: at, points: [] };
    this.minute.lastAt = at;
    this.minute.points.push(point);
  }

  /** The last `rangeMs` before `now`: from the 5 s ring up to an hour, from the minute ring beyond. */
  range(rangeMs: number, now: number): HistorySeries {
    const fromAt = now - rangeMs;
    const fine = rangeMs <= FINE_STEP_MS * FINE_POINTS;
    const out = { at: [] as number[], series: emptySeries() };
    if (fine) this.fine.readInto(fromAt, out);
    else {
      this.coarse.readInto(fromAt, out);
      // The minute under way, as of its latest point, so that the day's chart reaches now.
      if (this.minute) {
        out.at.push(this.minute.lastAt);
        for (const f of HISTORY_FIELDS) out.series[f].push(finite(merge(this.minute.points)[f]));
      }
    }
    return { stepMs: fine ? FINE_STEP_MS : COARSE_STEP_MS, fromAt, toAt: now, ...out };
  }

  private closeMinute(): void {
    const m = this.minute;
    this.minute = undefined;
    if (m && m.points.length > 0) this.coarse.push((m.index + 1) * COARSE_STEP_MS, merge(m.points));
  }
}

/** One minute's point from its 5 s points (see `History`). */
export function merge(points: readonly HistoryPoint[]): HistoryPoint {
  const col = (f: HistoryField): number[] => points.map((p) => p[f]).filter((v) => !Number.isNaN(v));
  const mean = (f: HistoryField): number => {
    const v = col(f);
    return v.length === 0 ? NaN : v.reduce((a, b) => a + b, 0) / v.length;
  };
  const max = (f: HistoryField): number => {
    const v = col(f);
    return v.length === 0 ? NaN : Math.max(...v);
  };
  const min = (f: HistoryField): number => {
    const v = col(f);
    return v.length === 0 ? NaN : Math.min(...v);
  };
  return {
    eventsIn: mean('eventsIn'),
    sent: mean('sent'),
    suppressed: mean('suppressed'),
    expired: mean('expired'),
    dropped: mean('dropped'),
    p50Ms: percentile(col('p50Ms'), 0.5),
    p99Ms: max('p99Ms'),
    outboxDepth: max('outboxDepth'),
    outboxOldestMs: max('outboxOldestMs'),
    uplink: min('uplink'),
    connected: points.at(-1)?.connected ?? NaN,
  };
}

/** The nearest-rank percentile `q` (0..1) of `values`; NaN when there are none. Sorts `values`. */
export function percentile(values: number[] | Float64Array, q: number): number {
  if (values.length === 0) return NaN;
  values.sort((a, b) => a - b);
  const rank = Math.min(values.length, Math.max(1, Math.ceil(q * values.length)));
  return values[rank - 1] ?? NaN;
}

function emptySeries(): HistorySeries['series'] {
  return Object.fromEntries(HISTORY_FIELDS.map((f) => [f, []])) as unknown as HistorySeries['series'];
}

function finite(v: number | undefined): number | null {
  return v === undefined || Number.isNaN(v) ? null : v;
}
