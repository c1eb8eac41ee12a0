import type { ActionEntry } from './recent-actions.js';

export const DEFAULT_DECISIONS_PER_DEVICE = 16;
export const DEFAULT_DECISION_DEVICES = 2_000;

/**
 * The latest decisions of each recently decided device, bounded both ways: at most `perDevice` each (the newest), for
 * at most `maxDevices` devices (those decided most recently). What `vigil explain` reads a device's decisions from,
 * so that a busy fleet does not push a quiet device's decisions out of the dashboard's ring before anyone asks.
 */
export class DeviceDecisions {
  private readonly byDevice = new Map<string, ActionEntry[]>();

  constructor(
    readonly perDevice = DEFAULT_DECISIONS_PER_DEVICE,
    readonly maxDevices = DEFAULT_DECISION_DEVICES,
  ) {
    if (!Number.isInteger(perDevice) || perDevice < 1 || !Number.isInteger(maxDevices) || maxDevices < 1)
      throw new RangeError('perDevice and maxDevices must be positive integers');
  }

  add(entry: ActionEntry): void {
    const actor = entry.action.actor;
    const list = this.byDevice.get(actor) ?? [];
    // Re-inserted: the map's order is the order devices were last decided for, the oldest first.
    this.byDevice.delete(actor);
    list.push(entry);
    if (list.length > this.perDevice) list.shift();
    this.byDevice.set(actor, list);
    if (this.byDevice.size > this.maxDevices) {
      const oldest = this.byDevice.keys().next().value;
      if (oldest !== undefined) this.byDevice.delete(oldest);
    }
  }

  /** The device's decisions kept, oldest first. */
  of(actor: string): readonly ActionEntry[] {
    return this.byDevice.get(actor) ?? [];
  }
}
