import type { Logger } from 'pino';
import type { DeviceActivity } from './device-activity.js';

/** How often the devices never heard from are counted: a scan of the profile keys (about 1 s per million). */
export const DEFAULT_NEVER_SEEN_EVERY_MS = 60_000;

/**
 * Where every device stands, one definition for the page and the API; the four add up to `total`.
 * - `connected`: connected to the broker now.
 * - `away`: not connected, heard from within `silentAfterMs` (an event of its own, or its connection).
 * - `silent`: not connected, heard from since the gateway started but not within `silentAfterMs`.
 * - `neverSeen`: has a profile, not heard from since the gateway started; counted every
 *   `neverSeenEveryMs`, so it lags by up to that (a device first heard from since the count is in both).
 */
export interface Presence {
  connected: number;
  away: number;
  silent: number;
  neverSeen: number;
  total: number;
  silentAfterMs: number;
  /** When `neverSeen` was counted; null until the first count is done. */
  neverSeenAt: number | null;
  neverSeenEveryMs: number;
}

export interface PresenceOptions {
  devices: DeviceActivity;
  /** Counts the profiles whose id `where` keeps. */
  countProfiles: (where: (id: string) => boolean) => Promise<number>;
  now: () => number;
  logger: Logger;
  neverSeenEveryMs?: number;
}

/** Presence from the device activity, with the count of devices never seen taken now and then. */
export class PresenceCounter {
  readonly neverSeenEveryMs: number;
  private neverSeen: { count: number; at: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private counting: Promise<void> | undefined;

  constructor(private readonly opts: PresenceOptions) {
    this.neverSeenEveryMs = opts.neverSeenEveryMs ?? DEFAULT_NEVER_SEEN_EVERY_MS;
  }

  /** Counts at once, then every `neverSeenEveryMs` until `stop`. */
  start(): void {
    void this.countNeverSeen();
    this.timer = setInterval(() => void this.countNeverSeen(), this.neverSeenEveryMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One count of the profiles never heard from; a count still under way is not started again. */
  countNeverSeen(): Promise<void> {
    const { devices, countProfiles, now, logger } = this.opts;
    this.counting ??= countProfiles((id) => devices.lastSeenAt(id) === undefined)
      .then(
        (count) => void (this.neverSeen = { count, at: now() }),
        (err: unknown) => logger.warn({ err }, 'could not count the devices never seen'),
      )
      .finally(() => (this.counting = undefined));
    return this.counting;
  }

  presence(): Presence {
    const { devices } = this.opts;
    const counts = devices.counts();
    // A device connected for longer than it was remembered (past the tracking bound) is still connected.
    const connected = Math.min(devices.connectedCount, counts.online);
    const away = counts.online - connected;
    const neverSeen = this.neverSeen?.count ?? 0;
    return {
      connected,
      away,
      silent: counts.offline,
      neverSeen,
      total: connected + away + counts.offline + neverSeen,
      silentAfterMs: devices.onlineWithinMs,
      neverSeenAt: this.neverSeen?.at ?? null,
      neverSeenEveryMs: this.neverSeenEveryMs,
    };
  }
}
