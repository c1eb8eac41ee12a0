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

/** One kept event, overwritten in place when its ring comes round: keeping an event allocates nothing. */
class Slot {
  at = 0;
  type = '';
  source: Event['source'] = 'device';
  deviceAt: number | undefined;
  /** The preview's fields, `fields` of them used; `value` alone when the data is not an object. */
  readonly keys: string[] = [];
  readonly values: Array<string | number | boolean | null> = [];
  fields = 0;
  more = 0;

  fill(ev: Event): void {
    this.at = ev.at;
    this.type = ev.type;
    this.source = ev.source;
    this.deviceAt = ev.deviceAt;
    this.fields = 0;
    this.more = 0;
    const value: unknown = ev.data;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      if (value !== undefined) this.put('value', shown(value));
      return;
    }
    // for…in rather than Object.keys: no array of keys per event.
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue;
      if (this.fields < MAX_FIELDS) this.put(cut(key), shown((value as Record<string, unknown>)[key]));
      else this.more++;
    }
  }

  private put(key: string, v: string | number | boolean | null): void {
    this.keys[this.fields] = key;
    this.values[this.fields] = v;
    this.fields++;
  }

  seen(): SeenEvent {
    const data: SeenEvent['data'] = Object.create(null) as SeenEvent['data'];
    for (let i = 0; i < this.fields; i++)
      data[this.keys[i] as string] = this.values[i] as SeenEvent['data'][string];
    return {
      at: this.at,
      type: this.type,
      source: this.source,
      ...(this.deviceAt !== undefined ? { deviceAt: this.deviceAt } : {}),
      data,
      more: this.more,
    };
  }
}

/** A device's last events: `count` slots used, the oldest at `head`; linked in the order devices were heard from. */
interface Ring {
  readonly slots: Slot[];
  head: number;
  count: number;
  id: string;
  older: Ring | undefined;
  newer: Ring | undefined;
}

/**
 * The last few events of each recently active device, for its page: a ring per device, and at most
 * `maxDevices` rings, so memory is bounded (about 1 kB an event at worst, ~100 bytes for usual telemetry)
 * however large the fleet. A preview copies at most MAX_FIELDS fields of an event. An event is kept in a slot
 * of its ring, overwritten in place, and the ring of a device forgotten goes to the next device: keeping an
 * event allocates nothing once the rings are full; the page's objects are made when it asks (`of`).
 */
export class DeviceEvents {
  readonly perDevice: number;
  readonly maxDevices: number;
  /**
   * Device id → its latest events. The order devices were last heard from is kept by the rings' links, not by
   * re-inserting into the Map: each re-insert left a deleted entry behind, and the Map's table was rebuilt every
   * thousand or so events.
   */
  private readonly rings = new Map<string, Ring>();
  private oldest: Ring | undefined;
  private newest: Ring | undefined;

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
    if (ring) {
      if (ring !== this.newest) {
        this.unlink(ring);
        this.link(ring);
      }
    } else {
      ring = this.freeRing();
      ring.id = ev.actor;
      this.rings.set(ev.actor, ring);
      this.link(ring);
    }
    let at = ring.head + ring.count;
    if (at >= this.perDevice) at -= this.perDevice;
    if (ring.count === this.perDevice) ring.head = ring.head + 1 === this.perDevice ? 0 : ring.head + 1;
    else ring.count++;
    let slot = ring.slots[at];
    if (slot === undefined) {
      slot = new Slot();
      ring.slots[at] = slot;
    }
    slot.fill(ev);
  }

  /** The latest events of device `id`, newest first; empty when none are kept. */
  of(id: string): SeenEvent[] {
    const ring = this.rings.get(id);
    const list: SeenEvent[] = [];
    if (!ring) return list;
    for (let i = ring.count - 1; i >= 0; i--) {
      list.push((ring.slots[(ring.head + i) % this.perDevice] as Slot).seen());
    }
    return list;
  }

  /** An empty ring: that of the device heard from least recently when the bound is reached, else a new one. */
  private freeRing(): Ring {
    const ring = this.oldest;
    if (this.rings.size < this.maxDevices || ring === undefined) {
      return { slots: [], head: 0, count: 0, id: '', older: undefined, newer: undefined };
    }
    this.rings.delete(ring.id);
    this.unlink(ring);
    ring.head = 0;
    ring.count = 0;
    return ring;
  }

  /** Links `ring` in as the device heard from last. */
  private link(ring: Ring): void {
    ring.older = this.newest;
    ring.newer = undefined;
    if (this.newest) this.newest.newer = ring;
    else this.oldest = ring;
    this.newest = ring;
  }

  private unlink(ring: Ring): void {
    if (ring.older) ring.older.newer = ring.newer;
    else this.oldest = ring.newer;
    if (ring.newer) ring.newer.older = ring.older;
    else this.newest = ring.older;
  }
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
