/** The retained health report on `vigil/{gw}/health` (docs/sync.md, "Fleet operations"). */
export interface HealthReport {
  gateway: string;
  /** The gateway's build version. */
  version: string;
  /** ISO 8601, gateway time of the report. */
  at: string;
  /** Seconds since the gateway started. */
  uptimeS: number;
  /** The rules in force: a bundle (its version, hash and group) or the local directory (version 0). */
  rules: { source: 'bundle' | 'dir'; version: number; hash?: string; group?: string };
  /** Events accepted per second since the previous report (devices, the broker, the cloud and scenarios). */
  eventsPerS: number;
  /** Actions decided and sent per second since the previous report. */
  actionsPerS: number;
  /** Actions waiting in the outbox, and how long the oldest has waited (null: empty). */
  outbox: { depth: number; oldestAgeS: number | null };
  /** MQTT clients connected to the embedded broker. */
  devicesConnected: number;
  /** Free bytes on the data directory's file system; null when it could not be read. */
  diskFreeBytes: number | null;
}

/** What the report is read from, at each tick. */
export interface HealthSources {
  gateway: string;
  version: string;
  rules: () => HealthReport['rules'];
  /** Totals since start: events accepted and actions decided. */
  totals: () => Promise<{ events: number; actions: number }>;
  outbox: () => { depth: number; oldestDecidedAt: number | undefined };
  devicesConnected: () => Promise<number>;
  diskFreeBytes: () => Promise<number | undefined>;
  /** Gateway time, ms. */
  now: () => number;
  /** A monotonic clock in ms for the uptime and the rates (not the gateway clock, which may jump ahead). */
  monotonicMs: () => number;
}

/**
 * Sends the health report every `everyMs` (and once at start) through `publish`, which keeps it retained. A
 * report that cannot be put together is logged and skipped; the next tick tries again.
 */
export class HealthReporter {
  private timer: NodeJS.Timeout | undefined;
  private readonly startedMs: number;
  private last: { atMs: number; events: number; actions: number } | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly sources: HealthSources,
    private readonly publish: (report: HealthReport) => void,
    private readonly onError: (err: unknown) => void,
  ) {
    this.startedMs = sources.monotonicMs();
  }

  start(everyMs: number): void {
    if (everyMs <= 0 || this.timer !== undefined) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Puts one report together, from the totals counted since the previous one. */
  async report(): Promise<HealthReport> {
    const s = this.sources;
    const [totals, devices, free] = await Promise.all([
      s.totals(),
      s.devicesConnected(),
      s.diskFreeBytes().catch(() => undefined),
    ]);
    const atMs = s.monotonicMs();
    const since = this.last ?? { atMs: this.startedMs, events: 0, actions: 0 };
    this.last = { atMs, ...totals };
    const seconds = Math.max(0.001, (atMs - since.atMs) / 1000);
    const now = s.now();
    const outbox = s.outbox();
    return {
      gateway: s.gateway,
      version: s.version,
      at: new Date(now).toISOString(),
      uptimeS: Math.floor((atMs - this.startedMs) / 1000),
      rules: s.rules(),
      eventsPerS: round((totals.events - since.events) / seconds),
      actionsPerS: round((totals.actions - since.actions) / seconds),
      outbox: {
        depth: outbox.depth,
        oldestAgeS:
          outbox.oldestDecidedAt === undefined
            ? null
            : Math.max(0, Math.floor((now - outbox.oldestDecidedAt) / 1000)),
      },
      devicesConnected: devices,
      diskFreeBytes: free ?? null,
    };
  }

  private tick(): void {
    if (this.running !== undefined) return;
    this.running = this.report()
      .then((report) => this.publish(report), this.onError)
      .finally(() => (this.running = undefined));
  }
}

function round(perS: number): number {
  return Math.round(perS * 100) / 100;
}
