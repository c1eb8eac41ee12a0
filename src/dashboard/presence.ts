import type { Logger } from 'pino';
import type { DeviceActivity } from './device-activity.js';

/**
 * The devices never heard from are counted by a scan of the profile keys (about 1 s per million): every
 * 10 s at most, and never for more than 1% of the time (every 100 s with a million profiles).
 */
export const DEFAULT_NEVER_SEEN_EVERY_MS = 10_000;
const SCAN_SHARE = 0.01;

/**
 * Where every device stands, one definition for the page and the API; the four add up to `total`.
 * - `connected`: connected to the broker now.
 * - `away`: not connected, heard from within `silentAfterMs` (an event of its own, or its connection).
 * - `silent`: not connected, heard from since the gateway started but not within `silentAfterMs`.
 * - `neverSeen`: has a profile, not heard from since the gateway started; counted every
 *   `neverSeenEveryMs` (longer when the scan is long), so it lags by up to that (a device first heard
 *   from since the count is in both).
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
  /** How long until the next count, as things stand. */
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
  readonly minEveryMs: number;
  private everyMs: number;
  private stopped = false;
  private neverSeen: { count: number; at: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private counting: Promise<void> | undefined;

  constructor(private readonly opts: PresenceOptions) {
    this.minEveryMs = opts.neverSeenEveryMs ?? DEFAULT_NEVER_SEEN_EVERY_MS;
    this.everyMs = this.minEveryMs;
  }

  /** Counts at once, then again and again (see DEFAULT_NEVER_SEEN_EVERY_MS) until `stop`. */
  start(): void {
    const next = (): void => {
      const startedAt = performance.now();
      void this.countNeverSeen().then(() => {
        if (this.stopped) return;
        this.everyMs = Math.max(this.minEveryMs, (performance.now() - startedAt) / SCAN_SHARE);
        this.timer = setTimeout(next, this.everyMs);
        this.timer.unref();
      });
    };
    next();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
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
      neverSeenEveryMs: Math.round(this.everyMs),
    };
  }
}

/** Where one device stands, by the same definition as `Presence`. */
export type DevicePresence = 'connected' | 'away' | 'silent' | 'never-seen';

/** One device's presence from what the gateway remembers of it. */
export function devicePresenceOf(devices: DeviceActivity, id: string): DevicePresence {
  if (devices.isConnected(id)) return 'connected';
  if (devices.lastSeenAt(id) === undefined) return 'never-seen';
  return devices.isOnline(id) ? 'away' : 'silent';
}
