import { FINE_STEP_MS, History, percentile, type HistoryPoint } from './history.js';
import type { RecentActions, VerdictTotals } from './recent-actions.js';

/** What the history is read from, once a 5 s step (the latencies once a tick). */
export interface HistorySources {
  /** Events accepted since the gateway started: a running total. */
  eventsInTotal: () => Promise<number> | number;
  recent: RecentActions;
  outboxDepth: () => number;
  /** When the action waiting longest in the outbox was decided; undefined when it is empty. */
  outboxOldestAt: () => number | undefined;
  /** 1 connected, 0 disconnected, NaN when no upstream is configured. */
  uplink: () => number;
  connected: () => number;
}

/**
 * Latencies kept for one 5 s point. Read from the recent actions every tick, so a point's percentiles
 * come from up to 500 actions a tick; at higher rates they are a sample of the latest of each tick.
 */
const MAX_LATENCY_SAMPLES = 4_096;

interface Base {
  /** The step boundary of the last point. */
  stepAt: number;
  at: number;
  eventsIn: number;
  totals: VerdictTotals;
}

/**
 * Feeds the history: every tick it reads the latencies of the actions sent since the last tick, and once
 * a 5 s boundary has passed it takes a point of rates (from running totals, so none is missed however
 * busy the gateway), latency percentiles and gauges. Nothing here runs per event.
 */
export class HistorySampler {
  readonly history = new History();
  private base: Base | undefined;
  private seq: number;
  private readonly latencies = new Float64Array(MAX_LATENCY_SAMPLES);
  private latencyCount = 0;
  private busy = false;

  constructor(private readonly src: HistorySources) {
    this.seq = src.recent.nextSeq;
  }

  /** One tick at gateway time `now`; resolves once the point due (if any) is taken. */
  async tick(now: number): Promise<void> {
    this.gatherLatencies();
    const stepAt = Math.floor(now / FINE_STEP_MS) * FINE_STEP_MS;
    if (this.busy || (this.base && stepAt <= this.base.stepAt)) return;
    this.busy = true;
    try {
      const eventsIn = await this.src.eventsInTotal();
      this.take(stepAt, now, eventsIn);
    } finally {
      this.busy = false;
    }
  }

  private take(stepAt: number, now: number, eventsIn: number): void {
    const totals = this.src.recent.totals();
    const prev = this.base;
    this.base = { stepAt, at: now, eventsIn, totals };
    // The first look only sets where the rates count from.
    if (!prev) {
      this.latencyCount = 0;
      return;
    }
    const seconds = Math.max(now - prev.at, 1) / 1000;
    const rate = (cur: number, before: number): number => Math.max(0, cur - before) / seconds;
    const samples = this.latencies.subarray(0, this.latencyCount);
    const oldestAt = this.src.outboxOldestAt();
    const point: HistoryPoint = {
      eventsIn: rate(eventsIn, prev.eventsIn),
      sent: rate(totals.sent, prev.totals.sent),
      suppressed: rate(totals.suppressed, prev.totals.suppressed),
      expired: rate(totals.expired, prev.totals.expired),
      dropped: rate(totals.dropped, prev.totals.dropped),
      p50Ms: percentile(samples, 0.5),
      p99Ms: percentile(samples, 0.99),
      outboxDepth: this.src.outboxDepth(),
      outboxOldestMs: oldestAt === undefined ? 0 : Math.max(0, now - oldestAt),
      uplink: this.src.uplink(),
      connected: this.src.connected(),
    };
    this.latencyCount = 0;
    this.history.add(stepAt, point);
  }

  private gatherLatencies(): void {
    const { recent } = this.src;
    for (const entry of recent.since(this.seq)) {
      if (entry.verdict !== 'sent' || this.latencyCount >= MAX_LATENCY_SAMPLES) continue;
      const { decidedAt, eventAt } = entry.action;
      this.latencies[this.latencyCount++] = Math.max(0, decidedAt - eventAt);
    }
    this.seq = recent.nextSeq;
  }
}
