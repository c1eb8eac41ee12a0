import type { Event } from '../shared/index.js';

/** Events kept per device for its page. */
export const DEFAULT_EVENTS_PER_DEVICE = 10;
/** Devices whose last events are kept; past this, those of the device heard from least recently go. */
export const DEFAULT_MAX_DEVICES_WITH_EVENTS = 1_000;
/** A preview keeps this many top-level fields of an event's data, each key and string cut to MAX_TEXT. */
const MAX_FIELDS = 8;
const MAX_TEXT = 64;

/** One event as a device's page lists it: its data as a bounded preview, never the whole payload. */
export interface SeenEvent {
  at: number;
  type: string;
  source: Event['source'];
  deviceAt?: number;
  /** Top-level fields, scalars as they are, strings cut, objects and arrays as `{…}` and `[…]`. */
  data: Record<string, string | number | boolean | null>;
  /** Top-level fields left out of `data`. */
  more: number;
}

export interface DeviceEventsOptions {
  perDevice?: number;
  maxDevices?: number;
}

/**
 * The last few events of each recently active device, for its page: a ring per device, and at most
 * `maxDevices` rings, so memory is bounded (about 1 kB an event at worst, ~100 bytes for usual telemetry)
 * however large the fleet. A preview copies at most MAX_FIELDS fields of an event.
 */
export class DeviceEvents {
  readonly perDevice: number;
  readonly maxDevices: number;
  /** Device id → its latest events, oldest first; devices in the order they were last heard from. */
  private readonly rings = new Map<string, SeenEvent[]>();

  constructor(opts: DeviceEventsOptions = {}) {
    this.perDevice = opts.perDevice ?? DEFAULT_EVENTS_PER_DEVICE;
    this.maxDevices = opts.maxDevices ?? DEFAULT_MAX_DEVICES_WITH_EVENTS;
    if (!Number.isInteger(this.perDevice) || this.perDevice < 1 || !Number.isInteger(this.maxDevices))
      throw new RangeError('perDevice and maxDevices must be positive integers');
  }

  /** Devices whose events are kept now. */
  get size(): number {
    return this.rings.size;
  }

  add(ev: Event): void {
    let ring = this.rings.get(ev.actor);
    if (ring) this.rings.delete(ev.actor);
    else ring = [];
    this.rings.set(ev.actor, ring);
    ring.push(seen(ev));
    if (ring.length > this.perDevice) ring.shift();
    if (this.rings.size > this.maxDevices) {
      const oldest = this.rings.keys().next();
      if (!oldest.done) this.rings.delete(oldest.value);
    }
  }

  /** The latest events of device `id`, newest first; empty when none are kept. */
  of(id: string): SeenEvent[] {
    return [...(this.rings.get(id) ?? [])].reverse();
  }
}

function seen(ev: Event): SeenEvent {
  const { data, more } = preview(ev.data);
  return {
    at: ev.at,
    type: ev.type,
    source: ev.source,
    ...(ev.deviceAt !== undefined ? { deviceAt: ev.deviceAt } : {}),
    data,
    more,
  };
}

function preview(value: unknown): Pick<SeenEvent, 'data' | 'more'> {
  const data: SeenEvent['data'] = Object.create(null) as SeenEvent['data'];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    if (value === undefined) return { data, more: 0 };
    data['value'] = shown(value);
    return { data, more: 0 };
  }
  const keys = Object.keys(value);
  for (const key of keys.slice(0, MAX_FIELDS))
    data[cut(key)] = shown((value as Record<string, unknown>)[key]);
  const more = Math.max(0, keys.length - MAX_FIELDS);
  return { data, more };
}

function shown(v: unknown): string | number | boolean | null {
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'string') return cut(v);
  if (Array.isArray(v)) return '[…]';
  if (typeof v === 'object') return '{…}';
  if (typeof v === 'bigint') return cut(v.toString());
  return typeof v;
}

function cut(s: string): string {
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;
}
