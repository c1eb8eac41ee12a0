import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { isExpired, RateLimiter } from '../actions/index.js';
import type { Policy, RatePolicy } from '../rules/policy.js';
import type { Action } from '../shared/index.js';
import type { OutboxSource } from './outbox-source.js';
import { queuedExpired } from './queued-expired.js';

/** Several actions in one message, a JSON array, for cloud brokers that limit publishes per connection. */
export interface BatchOptions {
  /** Actions in one message, at most. */
  max: number;
  /** How long a batch that is not full waits for more actions before it goes anyway. */
  withinMs: number;
}

export interface UplinkOptions {
  url: string;
  gatewayId: string;
  clientId?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  /** For mqtts:// (or tls://): a CA to trust, and a client certificate and key (AWS IoT Core wants them). */
  tls?: { ca?: Buffer | undefined; cert?: Buffer | undefined; key?: Buffer | undefined } | undefined;
  keepaliveMs: number;
  reconnectMs: number;
  /** Actions published and not yet acknowledged, at most. */
  inflight: number;
  outbox: OutboxSource;
  logger: Logger;
  /**
   * The policy in force, read each time it is used (a rules swap changes it at once): its `rate` paces the
   * actions sent, its `ttl` drops the ones that waited too long.
   */
  policy?: (() => Policy | undefined) | undefined;
  /** Publish up to `max` actions per message; unset, each action is a message of its own. */
  batch?: BatchOptions | undefined;
  /** The gateway's clock, in ms: `rate` and `ttl` are measured on it. Default `Date.now`. */
  now?: () => number;
  /** Messages on the topics the cloud sends down (rules, profiles, events). */
  onMessage?: (topic: string, payload: Buffer) => void;
  onSent?: (action: Action) => void;
  /** An action left the outbox unsent: it waited longer than its category's `ttl`. */
  onExpired?: (action: Action, now: number) => void;
  onConnectionChange?: (connected: boolean) => void;
}

/** Upstream topics of one gateway (DESIGN.md). */
export function upstreamTopics(gw: string) {
  return {
    actions: `vigil/${gw}/actions`,
    status: `vigil/${gw}/status`,
    rules: `vigil/${gw}/rules`,
    rulesStatus: `vigil/${gw}/rules/status`,
    profiles: `vigil/${gw}/profiles`,
    events: `vigil/${gw}/events`,
  } as const;
}

/**
 * The connection to the cloud broker. Actions leave the outbox only when the broker acknowledged them
 * (QoS 1 PUBACK); while the connection is down they stay there, and on reconnect the outbox drains
 * from the top, so delivery is at least once and consumers deduplicate on the action id.
 *
 * The outbox hands actions out highest priority first, so whatever holds the drain back (an outage, the
 * `rate` of the policy, the in-flight window) makes the lower priorities wait, never the higher ones. An
 * action whose `ttl` passed is dropped when its turn comes rather than sent late.
 */
export class Uplink {
  private readonly client: MqttClient;
  private readonly topics: ReturnType<typeof upstreamTopics>;
  private readonly now: () => number;
  /** The token bucket for the rate in force; a new rate starts a new bucket. */
  private paced: { rate: RatePolicy; limiter: RateLimiter } | undefined;
  /** Ids published on the current connection and not yet removed from the outbox. */
  private readonly inflight = new Set<string>();
  /** Ids in flight or being dropped: the outbox must not hand them out again meanwhile. */
  private readonly held = new Set<string>();
  /** Bumped on every connection, so acknowledgements of an old connection are not mistaken for new ones. */
  private generation = 0;
  private draining = false;
  private closed = false;
  /**
   * Tokens taken from the rate limiter for a batch still waiting to fill up; the limiter cannot give them
   * back, so the next batch uses them. At most one batch's worth.
   */
  private reserved = 0;
  /** Until when a batch that is not full waits for more actions. */
  private lingerUntil: number | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Number.POSITIVE_INFINITY;

  constructor(private readonly opts: UplinkOptions) {
    if (opts.batch && (!Number.isInteger(opts.batch.max) || opts.batch.max < 1 || opts.batch.withinMs < 0)) {
      throw new RangeError(
        `upstream batch needs max >= 1 and within >= 0, got ${JSON.stringify(opts.batch)}`,
      );
    }
    this.topics = upstreamTopics(opts.gatewayId);
    this.now = opts.now ?? Date.now;
    this.client = mqtt.connect(opts.url, {
      clientId: opts.clientId ?? `vigil-${opts.gatewayId}`,
      ...(opts.username !== undefined ? { username: opts.username } : {}),
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      ...(opts.tls?.ca !== undefined ? { ca: opts.tls.ca } : {}),
      ...(opts.tls?.cert !== undefined ? { cert: opts.tls.cert } : {}),
      ...(opts.tls?.key !== undefined ? { key: opts.tls.key } : {}),
      keepalive: Math.max(1, Math.round(opts.keepaliveMs / 1000)),
      reconnectPeriod: opts.reconnectMs,
      connectTimeout: 10_000,
      clean: true,
      queueQoSZero: false,
      // `connect()`: once every topic the cloud sends down has its handler.
      manualConnect: true,
      will: { topic: this.topics.status, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    this.client.on('connect', () => this.onConnect());
    this.client.on('close', () => this.onClose());
    this.client.on('error', (err) =>
      this.opts.logger.warn({ err: err.message, url: opts.url }, 'upstream error'),
    );
    this.client.on('message', (topic, payload) => this.opts.onMessage?.(topic, payload));
  }

  /** Starts connecting (and reconnecting after every loss) to the cloud broker. */
  connect(): void {
    if (!this.closed) this.client.connect();
  }

  get connected(): boolean {
    return this.client.connected;
  }

  private get policy(): Policy | undefined {
    return this.opts.policy?.();
  }

  private get limiter(): RateLimiter | undefined {
    const rate = this.policy?.rate;
    if (rate === undefined) return (this.paced = undefined);
    if (this.paced?.rate.count !== rate.count || this.paced.rate.perMs !== rate.perMs) {
      this.paced = { rate, limiter: new RateLimiter(rate) };
    }
    return this.paced.limiter;
  }

  /** Actions published and not yet acknowledged. */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Something was added to the outbox: send it if the connection, the rate and the window allow. */
  kick(): void {
    this.drain();
  }

  /**
   * Drops every queued action whose `ttl` passed, not only those the drain has reached, so that they
   * neither take room in the outbox during a long outage nor wait there unreported. Returns how many.
   */
  expireQueued(now: number = this.now()): number {
    const expired = queuedExpired(this.opts.outbox, this.policy, now, this.held);
    for (const action of expired) this.expire(action, now);
    return expired.length;
  }

  /** Publishes `offline` (the will covers crashes) and closes the connection. */
  async stop(): Promise<void> {
    this.closed = true;
    this.clearWake();
    if (this.client.connected) {
      await this.client
        .publishAsync(this.topics.status, 'offline', { qos: 1, retain: true })
        .catch((err: unknown) => this.opts.logger.warn({ err }, 'could not publish offline status'));
    }
    await this.client.endAsync();
  }

  publishStatus(topic: string, payload: string): void {
    if (!this.client.connected) return;
    this.client.publish(topic, payload, { qos: 1 }, (err) => {
      if (err) this.opts.logger.warn({ err: err.message, topic }, 'upstream publish failed');
    });
  }

  private onConnect(): void {
    this.generation += 1;
    this.forgetInflight();
    this.opts.logger.info({ url: this.opts.url }, 'upstream connected');
    // `online` (and the connected gauge) only once the cloud's topics are subscribed: what the cloud
    // sends after seeing it is not missed.
    const announce = (): void => {
      this.opts.onConnectionChange?.(true);
      this.client.publish(this.topics.status, 'online', { qos: 1, retain: true }, (err) => {
        if (err) this.opts.logger.warn({ err: err.message }, 'could not publish online status');
      });
    };
    if (!this.opts.onMessage) announce();
    else {
      this.client.subscribe(
        [this.topics.rules, this.topics.profiles, this.topics.events],
        { qos: 1 },
        (err) => {
          if (err) this.opts.logger.warn({ err: err.message }, 'upstream subscribe failed');
          if (this.client.connected) announce();
        },
      );
    }
    this.drain();
  }

  private onClose(): void {
    if (this.closed) return;
    if (this.inflight.size > 0 || this.opts.outbox.size > 0) {
      this.opts.logger.warn(
        { queued: this.opts.outbox.size, url: this.opts.url },
        'upstream disconnected; actions stay in the outbox',
      );
    }
    this.forgetInflight();
    this.lingerUntil = undefined;
    this.opts.onConnectionChange?.(false);
  }

  /** What was in flight on a lost connection is sent again: it stays in the outbox until acknowledged. */
  private forgetInflight(): void {
    for (const id of this.inflight) this.held.delete(id);
    this.inflight.clear();
  }

  /**
   * Publishes outbox entries in drain order while the window, the rate and the batch allow, and arms a
   * timer for when the rate or a lingering batch will let the next one go.
   */
  private drain(): void {
    // Re-entered from a publish callback or a kick during the loop: the running loop picks it up.
    if (this.draining) return;
    this.draining = true;
    try {
      while (!this.closed && this.client.connected) {
        const room = this.opts.inflight - this.inflight.size;
        if (room <= 0) return;
        const now = this.now();
        const target = Math.min(this.opts.batch?.max ?? 1, room);
        const ready = this.ready(target, now);
        if (ready.length === 0) {
          this.lingerUntil = undefined;
          return;
        }
        const count = this.sendable(ready.length, target, now);
        if (count === 0) return;
        this.reserved -= count;
        this.lingerUntil = undefined;
        this.publish(ready.slice(0, count));
      }
    } finally {
      this.draining = false;
    }
  }

  /** The next `n` actions to send; the expired ones met on the way are dropped. */
  private ready(n: number, now: number): Action[] {
    for (;;) {
      const next = this.opts.outbox.next(n, this.held);
      const fresh: Action[] = [];
      for (const action of next) {
        if (isExpired(action, now, this.policy)) this.expire(action, now);
        else fresh.push(action);
      }
      // Dropped ones are held now, so asking again brings the ones after them.
      if (fresh.length === next.length || next.length < n) return fresh;
    }
  }

  /**
   * How many of the `available` actions may go now (0: wait, a timer is armed). Without batching one goes
   * whenever the rate has a token for it. With batching a full batch goes as soon as the rate covers it;
   * one that is not full (too few actions, or too few tokens) waits up to `within`, then goes as it is.
   */
  private sendable(available: number, target: number, now: number): number {
    while (this.reserved < available && (this.limiter?.take(now) ?? true)) this.reserved += 1;
    const batch = this.opts.batch;
    const nextToken = this.reserved < available ? (this.limiter?.nextAt(now) ?? now) : undefined;
    if (batch !== undefined && (available < target || this.reserved < available)) {
      this.lingerUntil ??= now + batch.withinMs;
      if (now < this.lingerUntil) {
        this.wakeUpAt(Math.min(this.lingerUntil, nextToken ?? Number.POSITIVE_INFINITY), now);
        return 0;
      }
    }
    if (this.reserved === 0) {
      this.wakeUpAt(nextToken ?? now + 1, now);
      return 0;
    }
    return Math.min(this.reserved, available);
  }

  private publish(actions: Action[]): void {
    const generation = this.generation;
    for (const action of actions) {
      this.inflight.add(action.id);
      this.held.add(action.id);
    }
    const settle = (): void => {
      if (generation !== this.generation) return;
      for (const action of actions) {
        this.inflight.delete(action.id);
        this.held.delete(action.id);
      }
    };
    const body = this.opts.batch ? JSON.stringify(actions) : JSON.stringify(actions[0]);
    this.client.publish(this.topics.actions, body, { qos: 1 }, (err) => {
      if (err) {
        settle();
        this.opts.logger.debug(
          { err: err.message, ids: actions.map((a) => a.id) },
          'actions not acknowledged; they stay queued',
        );
        return;
      }
      // Acknowledged, even if on a connection since replaced: they may leave the outbox. They stay held
      // until removed so that the drain does not pick them up again meanwhile.
      for (const action of actions) this.opts.onSent?.(action);
      const at = this.now();
      Promise.all(actions.map((action) => this.opts.outbox.markDelivered(action.id, at))).then(
        () => {
          settle();
          this.kick();
        },
        (removeErr: unknown) => {
          settle();
          this.opts.logger.error({ err: removeErr, ids: actions.map((a) => a.id) }, 'outbox remove failed');
        },
      );
    });
  }

  private expire(action: Action, now: number): void {
    this.held.add(action.id);
    // The outbox forgets it at once; the delete reaches the disk with the next batch.
    const removed = this.opts.outbox.remove(action.id);
    this.opts.onExpired?.(action, now);
    removed.then(
      () => this.held.delete(action.id),
      (err: unknown) => {
        this.held.delete(action.id);
        this.opts.logger.error({ err, id: action.id }, 'outbox remove of an expired action failed');
      },
    );
  }

  private wakeUpAt(at: number, now: number): void {
    if (this.wakeTimer !== undefined && this.wakeAt <= at) return;
    this.clearWake();
    this.wakeAt = at;
    // Never 0: a timer that fires a hair early on the gateway's clock re-arms instead of spinning.
    this.wakeTimer = setTimeout(
      () => {
        this.wakeTimer = undefined;
        this.wakeAt = Number.POSITIVE_INFINITY;
        this.drain();
      },
      Math.max(1, at - now),
    );
  }

  private clearWake(): void {
    if (this.wakeTimer !== undefined) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.wakeAt = Number.POSITIVE_INFINITY;
  }
}
