import type { Event } from '../shared/index.js';
import { DeviceEvents, type DeviceEventsOptions } from './device-events.js';

/** A device heard from within this long is online, connected or not (the shipped `device-offline` waits 5m). */
export const DEFAULT_ONLINE_WITHIN_MS = 5 * 60_000;
/** Devices remembered; past this, the one silent longest is forgotten (about 100 bytes each). */
export const DEFAULT_MAX_TRACKED_DEVICES = 200_000;
/** Devices going silent are found by a walk at most this often; everything else updates the counts at once. */
const RECOUNT_EVERY_MS = 1_000;
/**
 * A device heard from again within this long keeps its place in the last-heard order: moving it costs a
 * delete and an insert per event, and the order only has to be right to within a few seconds.
 */
const REORDER_AFTER_MS = 5_000;

export interface DeviceActivityOptions {
  /** Gateway time in ms (the clock that stamps events). */
  now: () => number;
  onlineWithinMs?: number;
  maxDevices?: number;
  /** Bounds of the last events kept per device (`events`). */
  events?: DeviceEventsOptions;
}

export interface DeviceCounts {
  /** Devices seen since the gateway started (as far as remembered). */
  known: number;
  online: number;
  offline: number;
}

/**
 * When each device was last heard from and whether it is connected, fed with every accepted event.
 * Devices are kept roughly in the order they were last heard from, so a recount walks only the silent
 * ones, and forgetting the longest-silent is O(1). A device counts online while connected or heard
 * from within `onlineWithinMs`; the boundary is exact to within REORDER_AFTER_MS plus RECOUNT_EVERY_MS.
 */
export class DeviceActivity {
  readonly onlineWithinMs: number;
  /** The last events of recently active devices, their connections included. */
  readonly events: DeviceEvents;
  private readonly maxDevices: number;
  /** Device id → last heard from, least recently heard first (to within REORDER_AFTER_MS). */
  private readonly lastSeen = new Map<string, number>();
  /** Open connections per device id: a takeover briefly has two [MQTT-3.1.4-2]. */
  private readonly connections = new Map<string, number>();
  /** The latest count, kept up to date by events; devices going silent need a recount. */
  private counted: { at: number; counts: DeviceCounts } | undefined;

  constructor(private readonly opts: DeviceActivityOptions) {
    this.onlineWithinMs = opts.onlineWithinMs ?? DEFAULT_ONLINE_WITHIN_MS;
    this.maxDevices = opts.maxDevices ?? DEFAULT_MAX_TRACKED_DEVICES;
    this.events = new DeviceEvents(opts.events);
  }

  /** An accepted event: the device's own events and its connections count; cloud and engine events do not. */
  observe(ev: Event): void {
    const id = ev.actor;
    const wasConnected = this.connections.has(id);
    if (ev.source === 'broker' || ev.source === 'device') this.events.add(ev);
    if (ev.source === 'broker') {
      if (ev.type === 'disconnected') {
        this.disconnected(id);
        return;
      }
      if (ev.type === 'connected') this.connections.set(id, (this.connections.get(id) ?? 0) + 1);
    } else if (ev.source !== 'device') return;

    const prev = this.lastSeen.get(id);
    // The count stands as of when it was taken: a device silent then, and counted offline, is back.
    const c = this.counted?.counts;
    if (c && prev === undefined) {
      c.known++;
      c.online++;
    } else if (c && prev !== undefined && !wasConnected && this.isSilent(prev, this.counted?.at ?? 0)) {
      c.offline--;
      c.online++;
    }
    if (prev !== undefined && ev.at - prev < REORDER_AFTER_MS) {
      this.lastSeen.set(id, ev.at);
      return;
    }
    this.lastSeen.delete(id);
    this.lastSeen.set(id, ev.at);
    if (this.lastSeen.size > this.maxDevices) this.forgetOldest();
  }

  lastSeenAt(id: string): number | undefined {
    return this.lastSeen.get(id);
  }

  isConnected(id: string): boolean {
    return this.connections.has(id);
  }

  isOnline(id: string): boolean {
    if (this.connections.has(id)) return true;
    const at = this.lastSeen.get(id);
    return at !== undefined && !this.isSilent(at, this.opts.now());
  }

  /** Connected (to the broker, as devices) right now. */
  get connectedCount(): number {
    return this.connections.size;
  }

  counts(): DeviceCounts {
    const now = this.opts.now();
    if (!this.counted || now - this.counted.at >= RECOUNT_EVERY_MS)
      this.counted = { at: now, counts: this.recount(now) };
    return { ...this.counted.counts };
  }

  private recount(now: number): DeviceCounts {
    let offline = 0;
    for (const [id, at] of this.lastSeen) {
      if (!this.isSilent(at, now)) break;
      // Silent but still connected (keep-alives only) counts as online.
      if (!this.connections.has(id)) offline++;
    }
    return { known: this.lastSeen.size, online: this.lastSeen.size - offline, offline };
  }

  private disconnected(id: string): void {
    const open = (this.connections.get(id) ?? 0) - 1;
    if (open > 0) {
      this.connections.set(id, open);
      return;
    }
    this.connections.delete(id);
    const seen = this.lastSeen.get(id);
    const c = this.counted?.counts;
    // Silent when counted, online only for its connection, and now gone too: offline from now on.
    if (c && seen !== undefined && this.isSilent(seen, this.counted?.at ?? 0)) {
      c.online--;
      c.offline++;
    }
  }

  private forgetOldest(): void {
    const oldest = this.lastSeen.entries().next();
    if (oldest.done) return;
    const [id, at] = oldest.value;
    this.lastSeen.delete(id);
    const c = this.counted?.counts;
    if (!c) return;
    c.known--;
    if (this.isSilent(at, this.counted?.at ?? 0) && !this.connections.has(id)) c.offline--;
    else c.online--;
  }

  private isSilent(lastSeenAt: number, now: number): boolean {
    return lastSeenAt < now - this.onlineWithinMs;
  }
}
