import type { Logger } from 'pino';

/** A limit that was hit; the label of `vigil_mqtt_limit_hits_total`. */
export type LimitName =
  | 'max-connections'
  | 'pending-per-address'
  | 'pending-shed'
  | 'connect-timeout'
  | 'publish-rate'
  | 'rate-disconnect'
  | 'topic-length'
  | 'topic-levels'
  | 'packet-size'
  | 'subscriptions';

/**
 * Connections the kernel completes and holds for the listener to accept. Node's default (511) is what a
 * reconnect storm of thousands of devices overflows: the rest are dropped and retry their handshake after
 * 1, 3, 7, 15 s. Linux caps it at `net.core.somaxconn` (4,096 by default since 5.4). Who gets in is still
 * decided at accept (see `ConnectionAdmission`), however many wait here.
 */
export const LISTEN_BACKLOG = 65_535;

/** Repeated refusals of one kind are logged at most this often. */
export const LOG_EVERY_MS = 10_000;

/**
 * Warnings logged at most once per `everyMs` per kind, each with how many of that kind were not logged
 * since the last one: a flood of refusals costs one log line per kind and period, not one per refusal.
 */
export class OccasionalLog {
  private readonly last = new Map<string, { atMs: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly everyMs = LOG_EVERY_MS,
  ) {}

  warn(kind: string, nowMs: number, fields: Record<string, unknown>, message: string): void {
    const last = this.last.get(kind);
    if (last !== undefined && nowMs - last.atMs < this.everyMs) {
      last.suppressed++;
      return;
    }
    const notLogged = last?.suppressed ?? 0;
    this.last.set(kind, { atMs: nowMs, suppressed: 0 });
    this.logger.warn({ ...fields, ...(notLogged > 0 ? { sinceLastLogged: notLogged } : {}) }, message);
  }
}
