import type { Event } from '../shared/index.js';

/** Why a device's last-seen time was forgotten: no longer needed, or the bound was reached. */
export type LastSeenEviction = 'unneeded' | 'bound';

/** What a pass of `forget` asks about each device it could forget. */
export interface LastSeenNeeds {
  /** Whether a pending timer waits on the device (a silence that has not fired yet). */
  waitedOn: (actor: string) => boolean;
  /** Whether the device is known (it has a profile); a promise when that takes a read. */
  known: (actor: string) => boolean | Promise<boolean>;
}

/** Devices checked between two turns of the event loop in a pass of `forget`. */
const CHECKS_PER_TURN = 2_000;

/**
 * Each device's last sign of life (a device event or a connection change), for arming new or changed `absent`
 * scenarios after a restart and for telling known devices from strangers. Kept for devices that are connected,
 * known, or waited on by a silence timer (`forget` drops the others), and never for more than `maxDevices`: past
 * it the device seen longest ago is forgotten. The devices are kept in order of their last update, that one first.
 *
 * Each device has a numbered slot, its time in a typed array and its place in the order in two arrays of links:
 * an update relinks the slot and allocates nothing (re-inserting into a Map of times, as this did, boxed every
 * time and left a deleted entry behind, and the Map's table was rebuilt every few thousand events).
 */
export class LastSeen {
  private readonly slots = new Map<string, number>();
  private actors: Array<string | undefined> = [];
  private at = new Float64Array(0);
  private older = new Int32Array(0);
  private newer = new Int32Array(0);
  /** The slots seen longest ago and last, -1 when none. */
  private oldest = -1;
  private newest = -1;
  /** Slots given up by forgotten devices, to be used again. */
  private readonly free: number[] = [];
  /** Devices with a connection open, as the recorded connection changes say. */
  private readonly connected = new Set<string>();

  constructor(
    entries: Iterable<readonly [string, number]>,
    private readonly maxDevices: number,
    private readonly onEvicted: (reason: LastSeenEviction, devices: number) => void,
  ) {
    const sorted = [...entries].sort((a, b) => a[1] - b[1]);
    for (const [actor, at] of sorted) {
      const slot = this.slots.get(actor);
      if (slot === undefined) this.add(actor, at);
      else {
        // As a Map built from the list would: the last time given wins, at the place of the first.
        this.at[slot] = at;
      }
    }
    this.trim();
  }

  get size(): number {
    return this.slots.size;
  }

  /** The times as a map, oldest first (a copy: for recovery, not for every event). */
  get times(): ReadonlyMap<string, number> {
    return new Map(this.entries());
  }

  has(actor: string): boolean {
    return this.slots.has(actor);
  }

  /** A device event or a connection change was applied. */
  see(ev: Event): void {
    if (ev.source === 'broker') {
      if (ev.type === 'connected') this.connected.add(ev.actor);
      else if (ev.type === 'disconnected') this.connected.delete(ev.actor);
    }
    const slot = this.slots.get(ev.actor);
    if (slot === undefined) {
      this.add(ev.actor, ev.at);
      this.trim();
      return;
    }
    if ((this.at[slot] as number) >= ev.at) return;
    this.at[slot] = ev.at;
    if (slot !== this.newest) {
      this.unlink(slot);
      this.link(slot);
    }
  }

  /** After a restart no device is connected until its connection is recorded again. */
  forgetConnections(): void {
    this.connected.clear();
  }

  /** Every device with its time, as a list, oldest first. */
  entries(): Array<[string, number]> {
    const list: Array<[string, number]> = [];
    for (let s = this.oldest; s !== -1; s = this.newer[s] as number) {
      list.push([this.actors[s] as string, this.at[s] as number]);
    }
    return list;
  }

  /**
   * For a checkpoint: the devices and their times copied now, into an array of the ids and an array of the times,
   * and made into entries as they are read. The entries at once would be about 70 bytes a device of heap held
   * while the checkpoint is written, this copy 16.
   */
  frozenEntries(): Iterable<[actor: string, at: number]> {
    const actors = new Array<string>(this.slots.size);
    const times = new Float64Array(this.slots.size);
    let n = 0;
    for (let s = this.oldest; s !== -1; s = this.newer[s] as number) {
      actors[n] = this.actors[s] as string;
      times[n++] = this.at[s] as number;
    }
    return {
      *[Symbol.iterator]() {
        for (let i = 0; i < n; i++) yield [actors[i] as string, times[i] as number];
      },
    };
  }

  /**
   * The devices last seen at or before `seenBefore` that are neither connected, nor waited on, nor known: those a
   * housekeeping pass forgets (`drop`, as its journal record says). Yields to I/O now and then.
   */
  async unneeded(needs: LastSeenNeeds, seenBefore: number): Promise<string[]> {
    const candidates: string[] = [];
    for (let s = this.oldest; s !== -1; s = this.newer[s] as number) {
      if ((this.at[s] as number) > seenBefore) break;
      const actor = this.actors[s] as string;
      if (!this.connected.has(actor) && !needs.waitedOn(actor)) candidates.push(actor);
    }
    const unneeded: string[] = [];
    for (let i = 0; i < candidates.length; i++) {
      if (i > 0 && i % CHECKS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      const actor = candidates[i] as string;
      const known = needs.known(actor);
      if (known === true || (known !== false && (await known))) continue;
      unneeded.push(actor);
    }
    return unneeded;
  }

  /**
   * Forgets `actors` (from `unneeded`) that are still last seen at or before `seenBefore` and not connected: a device
   * seen or connected since the pass looked is kept. Returns how many were forgotten.
   */
  drop(actors: readonly string[], seenBefore: number): number {
    let forgotten = 0;
    for (const actor of actors) {
      const slot = this.slots.get(actor);
      if (slot === undefined || (this.at[slot] as number) > seenBefore || this.connected.has(actor)) continue;
      this.remove(slot);
      forgotten++;
    }
    if (forgotten > 0) this.onEvicted('unneeded', forgotten);
    return forgotten;
  }

  private trim(): void {
    let evicted = 0;
    while (this.slots.size > this.maxDevices && this.oldest !== -1) {
      this.connected.delete(this.actors[this.oldest] as string);
      this.remove(this.oldest);
      evicted++;
    }
    if (evicted > 0) this.onEvicted('bound', evicted);
  }

  private add(actor: string, at: number): void {
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.actors.length;
      this.actors.push(undefined);
      if (slot >= this.at.length) this.grow(Math.max(16, this.at.length * 2));
    }
    this.actors[slot] = actor;
    this.at[slot] = at;
    this.slots.set(actor, slot);
    this.link(slot);
  }

  private remove(slot: number): void {
    this.slots.delete(this.actors[slot] as string);
    this.unlink(slot);
    this.actors[slot] = undefined;
    this.free.push(slot);
  }

  /** Links `slot` in as the one seen last. */
  private link(slot: number): void {
    this.older[slot] = this.newest;
    this.newer[slot] = -1;
    if (this.newest === -1) this.oldest = slot;
    else this.newer[this.newest] = slot;
    this.newest = slot;
  }

  private unlink(slot: number): void {
    const older = this.older[slot] as number;
    const newer = this.newer[slot] as number;
    if (older === -1) this.oldest = newer;
    else this.newer[older] = newer;
    if (newer === -1) this.newest = older;
    else this.older[newer] = older;
  }

  private grow(length: number): void {
    const at = new Float64Array(length);
    const older = new Int32Array(length);
    const newer = new Int32Array(length);
    at.set(this.at);
    older.set(this.older);
    newer.set(this.newer);
    this.at = at;
    this.older = older;
    this.newer = newer;
  }
}
