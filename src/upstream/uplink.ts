import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { Action } from '../shared/index.js';

/** What the uplink needs of the outbox: the next actions in drain order, and removal once acknowledged. */
export interface OutboxSource {
  next(n: number): Action[];
  remove(id: string): Promise<void>;
  readonly size: number;
}

export interface UplinkOptions {
  url: string;
  gatewayId: string;
  clientId?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  keepaliveMs: number;
  reconnectMs: number;
  /** Actions published and not yet acknowledged, at most. */
  inflight: number;
  outbox: OutboxSource;
  logger: Logger;
  /** Messages on the topics the cloud sends down (rules, profiles, events). */
  onMessage?: (topic: string, payload: Buffer) => void;
  onSent?: (action: Action) => void;
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
 */
export class Uplink {
  private readonly client: MqttClient;
  private readonly topics: ReturnType<typeof upstreamTopics>;
  private readonly inflight = new Set<string>();
  /** Bumped on every connection, so acknowledgements of an old connection are not mistaken for new ones. */
  private generation = 0;
  private draining = false;
  private closed = false;

  constructor(private readonly opts: UplinkOptions) {
    this.topics = upstreamTopics(opts.gatewayId);
    this.client = mqtt.connect(opts.url, {
      clientId: opts.clientId ?? `vigil-${opts.gatewayId}`,
      ...(opts.username !== undefined ? { username: opts.username } : {}),
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      keepalive: Math.max(1, Math.round(opts.keepaliveMs / 1000)),
      reconnectPeriod: opts.reconnectMs,
      connectTimeout: 10_000,
      clean: true,
      queueQoSZero: false,
      will: { topic: this.topics.status, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    this.client.on('connect', () => this.onConnect());
    this.client.on('close', () => this.onClose());
    this.client.on('error', (err) =>
      this.opts.logger.warn({ err: err.message, url: opts.url }, 'upstream error'),
    );
    this.client.on('message', (topic, payload) => this.opts.onMessage?.(topic, payload));
  }

  get connected(): boolean {
    return this.client.connected;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Something was added to the outbox: send it if the connection allows. */
  kick(): void {
    if (!this.draining) this.drain();
  }

  /** Publishes `offline` (the will covers crashes) and closes the connection. */
  async stop(): Promise<void> {
    this.closed = true;
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
    this.inflight.clear();
    this.opts.logger.info({ url: this.opts.url }, 'upstream connected');
    this.opts.onConnectionChange?.(true);
    this.client.publish(this.topics.status, 'online', { qos: 1, retain: true }, (err) => {
      if (err) this.opts.logger.warn({ err: err.message }, 'could not publish online status');
    });
    if (this.opts.onMessage) {
      this.client.subscribe(
        [this.topics.rules, this.topics.profiles, this.topics.events],
        { qos: 1 },
        (err) => {
          if (err) this.opts.logger.warn({ err: err.message }, 'upstream subscribe failed');
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
    this.inflight.clear();
    this.opts.onConnectionChange?.(false);
  }

  /** Publishes outbox entries in drain order, keeping at most `inflight` unacknowledged. */
  private drain(): void {
    this.draining = true;
    try {
      while (!this.closed && this.client.connected && this.inflight.size < this.opts.inflight) {
        const batch = this.opts.outbox.next(this.inflight.size + this.opts.inflight);
        const fresh = batch.filter((a) => !this.inflight.has(a.id));
        if (fresh.length === 0) return;
        for (const action of fresh) {
          if (this.inflight.size >= this.opts.inflight) return;
          this.send(action);
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private send(action: Action): void {
    const generation = this.generation;
    const settle = () => {
      if (generation === this.generation) this.inflight.delete(action.id);
    };
    this.inflight.add(action.id);
    this.client.publish(this.topics.actions, JSON.stringify(action), { qos: 1 }, (err) => {
      if (err) {
        settle();
        this.opts.logger.debug(
          { err: err.message, id: action.id },
          'action not acknowledged; it stays queued',
        );
        return;
      }
      // Acknowledged, even if on a connection since replaced: it may leave the outbox. It stays in
      // flight until removed so the drain loop does not pick it up again meanwhile.
      this.opts.onSent?.(action);
      this.opts.outbox.remove(action.id).then(
        () => {
          settle();
          this.kick();
        },
        (removeErr: unknown) => {
          settle();
          this.opts.logger.error({ err: removeErr, id: action.id }, 'outbox remove failed');
        },
      );
    });
  }
}
