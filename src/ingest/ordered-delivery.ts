import type { Logger } from 'pino';
import type { Event, Profile } from '../shared/index.js';
import type { ProfileSource } from './types.js';

export type Deliver = (ev: Event, profile: Profile | undefined) => void;

/**
 * Hands events on with their device's profile, in arrival order per device. On a cache hit with
 * nothing queued for the device the event goes out synchronously; otherwise it joins a per-device
 * FIFO that waits for the profile read, so a later event that hits the cache cannot overtake it.
 * Devices do not wait for each other.
 */
export class OrderedDelivery {
  private readonly queues = new Map<string, Event[]>();
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly profiles: ProfileSource,
    private readonly deliver: Deliver,
    private readonly logger: Logger,
  ) {}

  /** Events waiting for a profile read, across all devices. */
  get queued(): number {
    let n = 0;
    for (const queue of this.queues.values()) n += queue.length;
    return n;
  }

  push(ev: Event): void {
    const queue = this.queues.get(ev.actor);
    if (queue !== undefined) {
      queue.push(ev);
      return;
    }
    const cached = this.profiles.peek(ev.actor);
    if (cached.hit) {
      this.handOn(ev, cached.profile);
      return;
    }
    const fresh = [ev];
    this.queues.set(ev.actor, fresh);
    void this.pump(ev.actor, fresh);
  }

  /** Resolves once nothing is queued. */
  drain(): Promise<void> {
    if (this.queues.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // Never rejects: a failed read delivers without the profile, a failed delivery is logged.
  private async pump(actor: string, queue: Event[]): Promise<void> {
    try {
      for (let ev = queue[0]; ev !== undefined; ev = queue[0]) {
        const profile = await this.profileOf(actor);
        queue.shift();
        this.handOn(ev, profile);
      }
    } finally {
      // No await between the empty check above and this: an event pushed meanwhile would be stranded.
      this.queues.delete(actor);
      if (this.queues.size === 0) this.wakeIdle();
    }
  }

  private async profileOf(actor: string): Promise<Profile | undefined> {
    try {
      // An earlier read for this device may have filled the cache while the event waited.
      const cached = this.profiles.peek(actor);
      return cached.hit ? cached.profile : await this.profiles.get(actor);
    } catch (err) {
      this.logger.error(
        { err, deviceId: actor },
        'profile read failed; the event goes on without the profile',
      );
      return undefined;
    }
  }

  private handOn(ev: Event, profile: Profile | undefined): void {
    try {
      this.deliver(ev, profile);
    } catch (err) {
      // One event that breaks a later stage must not stop this device's queue, nor the broker.
      this.logger.error(
        { err, deviceId: ev.actor, type: ev.type, source: ev.source },
        'delivering an event failed',
      );
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
