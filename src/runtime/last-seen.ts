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
 * it the device seen longest ago is forgotten. The entries are kept in order of their last update, so that one is
 * the first.
 */
export class LastSeen {
  private readonly at: Map<string, number>;
  /** Devices with a connection open, as the recorded connection changes say. */
  private readonly connected = new Set<string>();

  constructor(
    entries: Iterable<readonly [string, number]>,
    private readonly maxDevices: number,
    private readonly onEvicted: (reason: LastSeenEviction, devices: number) => void,
  ) {
    this.at = new Map([...entries].sort((a, b) => a[1] - b[1]));
    this.trim();
  }

  get size(): number {
    return this.at.size;
  }

  /** The times as a map (read-only), oldest first. */
  get times(): ReadonlyMap<string, number> {
    return this.at;
  }

  has(actor: string): boolean {
    return this.at.has(actor);
  }

  /** A device event or a connection change was applied. */
  see(ev: Event): void {
    if (ev.source === 'broker') {
      if (ev.type === 'connected') this.connected.add(ev.actor);
      else if (ev.type === 'disconnected') this.connected.delete(ev.actor);
    }
    const seen = this.at.get(ev.actor);
    if (seen !== undefined) {
      if (seen >= ev.at) return;
      this.at.delete(ev.actor);
    }
    this.at.set(ev.actor, ev.at);
    if (seen === undefined) this.trim();
  }

  /** After a restart no device is connected until its connection is recorded again. */
  forgetConnections(): void {
    this.connected.clear();
  }

  /** Every device with its time, as a list. */
  entries(): Array<[string, number]> {
    return [...this.at];
  }

  /**
   * For a checkpoint: the devices and their times copied now, into an array of the ids and an array of the times,
   * and made into entries as they are read. The entries at once would be about 70 bytes a device of heap held
   * while the checkpoint is written, this copy 16.
   */
  frozenEntries(): Iterable<[actor: string, at: number]> {
    const actors = new Array<string>(this.at.size);
    const times = new Float64Array(this.at.size);
    let n = 0;
    for (const [actor, at] of this.at) {
      actors[n] = actor;
      times[n++] = at;
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
    for (const [actor, at] of this.at) {
      if (at > seenBefore) break;
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
      const at = this.at.get(actor);
      if (at === undefined || at > seenBefore || this.connected.has(actor)) continue;
      this.at.delete(actor);
      forgotten++;
    }
    if (forgotten > 0) this.onEvicted('unneeded', forgotten);
    return forgotten;
  }

  private trim(): void {
    let evicted = 0;
    while (this.at.size > this.maxDevices) {
      const oldest = this.at.keys().next();
      if (oldest.done === true) break;
      this.at.delete(oldest.value);
      this.connected.delete(oldest.value);
      evicted++;
    }
    if (evicted > 0) this.onEvicted('bound', evicted);
  }
}
