import type { Logger } from 'pino';
import { QueueFullError, type Event, type Profile } from '../shared/index.js';
import type { ProfileSource, PublishMeta } from './types.js';

/**
 * Takes an event with its device's profile. A promise it returns settles once the event is accepted for
 * good (recorded), and a QoS 1 publish is acknowledged only then; any other return value is ignored.
 */
export type Deliver = (ev: Event, profile: Profile | undefined, meta: PublishMeta | undefined) => unknown;

/** Hands an input on with its device's profile; a promise it returns is what the caller waits for. */
export type HandOn = (profile: Profile | undefined) => Promise<void> | void;

/** How many inputs may wait for profile reads, all devices together, and who counts what that refuses. */
export interface DeliveryBound {
  maxQueued: number;
  onRefused: () => void;
}

interface Queued {
  handOn: HandOn;
  /** Settles the promise `push` returned, once the input was handed on. */
  settle?: { resolve: () => void; reject: (err: unknown) => void };
}

/**
 * Hands inputs on with their device's profile, in arrival order per device. On a cache hit with
 * nothing queued for the device the input goes out synchronously; otherwise it joins a per-device
 * FIFO that waits for the profile read, so a later input that hits the cache cannot overtake it.
 * Devices do not wait for each other. Events and timer firings share the FIFO, so a timer never
 * overtakes its device's events, and time never goes backwards for a device.
 *
 * What waits is bounded: past `bound.maxQueued` a device or cloud event that would wait is refused (a QoS 1 publish
 * is not acknowledged, so it is sent again; a QoS 0 one is dropped), counted. Connection changes, timer firings and
 * emitted events are never refused (they are not sent again), but count toward the bound.
 */
export class OrderedDelivery {
  private readonly queues = new Map<string, Queued[]>();
  private idleWaiters: Array<() => void> = [];
  private count = 0;

  constructor(
    private readonly profiles: ProfileSource,
    private readonly deliver: Deliver,
    private readonly logger: Logger,
    private readonly bound: DeliveryBound = {
      maxQueued: Number.POSITIVE_INFINITY,
      onRefused: () => undefined,
    },
  ) {}

  /** Events waiting for a profile read, across all devices. */
  get queued(): number {
    return this.count;
  }

  /** Some device's inputs wait for its profile, or are being handed on from that wait. */
  get reading(): boolean {
    return this.queues.size > 0;
  }

  /** Half the bound is taken: publishers should wait. */
  get congested(): boolean {
    return this.count >= this.bound.maxQueued / 2;
  }

  /**
   * Hands `ev` on now or once its profile is read. Returns what `deliver` returned for it (a promise when
   * it was queued and `deliver` gives one, rejected when delivering threw).
   */
  push(ev: Event, meta?: PublishMeta): Promise<void> | void {
    if (!this.queues.has(ev.actor)) {
      const cached = this.profiles.peek(ev.actor);
      if (cached.hit) return this.handOn(ev, cached.profile, meta);
    }
    if (this.count >= this.bound.maxQueued && ev.source !== 'broker') {
      this.bound.onRefused();
      if (meta !== undefined && meta.qos > 0)
        return Promise.reject(new QueueFullError('ingest', this.bound.maxQueued));
      return;
    }
    // A connection change can wait a few milliseconds for its profile: a reconnect storm shares the reads.
    return this.pushInput(ev.actor, (profile) => this.handOn(ev, profile, meta), ev.source === 'broker');
  }

  /** Any input of `actor` (a timer firing), in the same order as its events; `soon`: its read may wait for others. */
  pushInput(actor: string, handOn: HandOn, soon = false): Promise<void> | void {
    const queue = this.queues.get(actor);
    if (queue !== undefined) return this.enqueue(queue, handOn);
    const cached = this.profiles.peek(actor);
    if (cached.hit) return handOn(cached.profile);
    const fresh: Queued[] = [];
    this.queues.set(actor, fresh);
    const settled = this.enqueue(fresh, handOn);
    void this.pump(actor, fresh, soon);
    return settled;
  }

  private enqueue(queue: Queued[], handOn: HandOn): Promise<void> {
    const settled = new Promise<void>((resolve, reject) =>
      queue.push({ handOn, settle: { resolve, reject } }),
    );
    this.count++;
    // The caller may not wait for it (a QoS 0 publish, a connection change): no unhandled rejection.
    settled.catch(() => undefined);
    return settled;
  }

  /** Resolves once nothing is queued. */
  drain(): Promise<void> {
    if (this.queues.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // Never rejects: a failed read delivers without the profile, a failed delivery is logged.
  private async pump(actor: string, queue: Queued[], soon: boolean): Promise<void> {
    try {
      for (let item = queue[0]; item !== undefined; item = queue[0]) {
        const profile = await this.profileOf(actor, soon);
        soon = false;
        queue.shift();
        this.count--;
        let result: Promise<void> | void;
        try {
          result = item.handOn(profile);
        } catch (err) {
          this.logger.error({ err, deviceId: actor }, 'handing an input on failed');
          result = Promise.reject(err instanceof Error ? err : new Error(String(err)));
        }
        if (item.settle) {
          if (result === undefined) item.settle.resolve();
          else result.then(item.settle.resolve, item.settle.reject);
        }
      }
    } finally {
      // No await between the empty check above and this: an event pushed meanwhile would be stranded.
      this.queues.delete(actor);
      if (this.queues.size === 0) this.wakeIdle();
    }
  }

  private async profileOf(actor: string, soon: boolean): Promise<Profile | undefined> {
    try {
      // An earlier read for this device may have filled the cache while the event waited.
      const cached = this.profiles.peek(actor);
      if (cached.hit) return cached.profile;
      const profiles = this.profiles;
      return await (soon && profiles.getSoon !== undefined ? profiles.getSoon(actor) : profiles.get(actor));
    } catch (err) {
      this.logger.error(
        { err, deviceId: actor },
        'profile read failed; the event goes on without the profile',
      );
      return undefined;
    }
  }

  private handOn(
    ev: Event,
    profile: Profile | undefined,
    meta: PublishMeta | undefined,
  ): Promise<void> | void {
    try {
      const result = this.deliver(ev, profile, meta);
      return result instanceof Promise ? (result as Promise<void>) : undefined;
    } catch (err) {
      // One event that breaks a later stage must not stop this device's queue, nor the broker.
      this.logger.error(
        { err, deviceId: ev.actor, type: ev.type, source: ev.source },
        'delivering an event failed',
      );
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
