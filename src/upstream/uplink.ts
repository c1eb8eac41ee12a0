import mqtt, { type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { isExpired, RateLimiter } from '../actions/index.js';
import type { Policy, RatePolicy } from '../rules/policy.js';
import { upstreamTopics, type Action } from '../shared/index.js';
import type { OutboxSource } from './outbox-source.js';
import { queuedExpired } from './queued-expired.js';
import type { TelemetryLane } from './telemetry-lane.js';

/** Several actions in one message, a JSON array, for cloud brokers that limit publishes per connection. */
export interface BatchOptions {
  /** Actions in one message, at most. */
  max: number;
  /** How long a batch that is not full waits for more actions before it goes anyway. */
  withinMs: number;
}

/** A message the cloud sent down on one of the gateway's topics. */
export interface CloudMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  /** The packet id the broker gave it (QoS 1 and 2); a redelivery of the same message keeps it. */
  messageId: number | undefined;
  /** The broker marked it as sent before [MQTT-3.3.1-1]. */
  dup: boolean;
  /** Which connection of the uplink it came on (a number bumped on every connection). */
  connection: number;
}

/**
 * Takes a message from the cloud. A promise it returns holds the acknowledgement back: the PUBACK is sent once
 * it resolves; when it rejects none is sent and the broker delivers the message again on the next session.
 * Any other return value is acknowledged at once.
 */
export type CloudMessageHandler = (message: CloudMessage) => Promise<unknown> | void;

/** The MQTT session with the cloud broker: kept while the gateway is away, so what is sent meanwhile waits. */
export interface SessionOptions {
  /** 4 (MQTT 3.1.1) or 5. */
  protocolVersion: 4 | 5;
  /** MQTT 5: how long the broker keeps the session after the connection is gone. */
  expiryMs: number;
}

/**
 * Telemetry is written only while the connection's socket holds less than this unsent: an action decided meanwhile
 * waits behind at most this much telemetry, never behind a backlog.
 */
const TELEMETRY_SOCKET_BYTES = 64 * 1024;
/** How long `stop` waits for the messages from the cloud being recorded before it gives them up unacknowledged. */
const STOP_RECEIVING_MS = 2_000;
/** How long `stop` waits for the PUBACKs of the actions in flight and of the `offline` status. */
const STOP_ACKS_MS = 2_000;
/** How long `stop` waits for the connection to close after the DISCONNECT before it cuts it. */
const STOP_ENDING_MS = 1_000;
/** The longest MQTT 5 session expiry, in seconds; it means "never" (MQTT 5.0 §3.1.2.11.2). */
const MAX_EXPIRY_S = 0xffff_ffff;
/**
 * Messages from the cloud read and waiting for their handler, at most; past either bound, reading waits (and the
 * PUBACKs of actions with it). As many as the default burst of cloud events (`ingest.cloudEvents.rate.burst`).
 */
const MAX_WAITING = 10_000;
const MAX_WAITING_BYTES = 16 * 1024 * 1024;
/**
 * Handed to mqtt.js' `handleMessage` callback to have it read on without sending a PUBACK: the uplink sends the
 * PUBACK itself once the message is handled (mqtt.js ignores the error beyond that).
 */
const READ_ON = new Error('acknowledged by the uplink once handled');

export interface UplinkOptions {
  url: string;
  gatewayId: string;
  /** Default `vigil-{gatewayId}`. It names the session on the broker, so it must not change across restarts. */
  clientId?: string | undefined;
  /** Default MQTT 3.1.1 (whose persistent session lasts as long as the broker keeps it). */
  session?: SessionOptions | undefined;
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
  /** Messages on the topics the cloud sends down (rules, profiles, events, commands); see `CloudMessageHandler`. */
  onMessage?: CloudMessageHandler;
  /**
   * The topics `onMessage` takes, read on every connection; default the gateway's rules, profiles, events and
   * commands.
   */
  subscriptions?: () => readonly string[];
  onSent?: (action: Action) => void;
  /** An action left the outbox unsent: it waited longer than its category's `ttl`. */
  onExpired?: (action: Action, now: number) => void;
  onConnectionChange?: (connected: boolean) => void;
  /** The low-priority lane of telemetry (`then.forward`): sent at QoS 0 only while no action waits to be sent. */
  telemetry?: TelemetryLane | undefined;
}

/**
 * The connection to the cloud broker. Actions leave the outbox only when the broker acknowledged them
 * (QoS 1 PUBACK); while the connection is down they stay there, and on reconnect the outbox drains
 * from the top, so delivery is at least once and consumers deduplicate on the action id.
 *
 * The outbox hands actions out highest priority first, so whatever holds the drain back (an outage, the
 * `rate` of the policy, the in-flight window) makes the lower priorities wait, never the higher ones. An
 * action whose `ttl` passed is dropped when its turn comes rather than sent late.
 *
 * The session is persistent (`clean: false` under a fixed client id): the broker keeps the subscriptions and
 * queues what the cloud sends at QoS 1 while the gateway is away, even across a crash. A message from the cloud
 * is acknowledged only once its handler is done with it (see `CloudMessageHandler`); until then the broker
 * holds it and delivers it again on the next session. Messages are handed over one at a time, in the order
 * they came, and acknowledged in that order [MQTT-4.6.0-2]; meanwhile mqtt.js reads on, so the PUBACKs of the
 * gateway's own actions are taken at once rather than behind messages being recorded (an action the cloud
 * acknowledged and the outbox has not yet heard of is sent again after a crash). Its own store of
 * unacknowledged actions is in memory; after a crash the outbox sends them again.
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
  /** A drain waits for the outbox to read the next actions back. */
  private awaitingLoad = false;
  /** `connect` was called: there is a connection (or an attempt) to end. */
  private connecting = false;
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
  /** Messages from the cloud handed over and not acknowledged yet: `stop` gives them up after a while. */
  private readonly receiving = new Set<{ settled: Promise<void>; giveUp: () => void }>();
  /** Messages from the cloud read and not yet handed over, in the order they came. */
  private readonly waiting: Array<{ packet: IPublishPacket; connection: number; bytes: number }> = [];
  private waitingBytes = 0;
  /** Hands the waiting messages over, one at a time; undefined when none wait. */
  private handing: Promise<void> | undefined;
  /** mqtt.js' go-ahead to read the next packet, held while too many messages wait. */
  private readOn: (() => void) | undefined;
  /** Publishes of actions waiting for their PUBACK (or their removal): `stop` gives them a moment. */
  private unacknowledged = 0;
  /** Called once `unacknowledged` is back to 0: `stop` waits for it (see `everyAnswered`). */
  private allAnswered: (() => void) | undefined;
  /** MQTT 5: actions carry an expiry, user properties and a content type. */
  private readonly v5: boolean;
  /** Telemetry waits for the socket to take what it holds. */
  private telemetryWaitsForSocket = false;
  /** The latest retained status per topic, published again on every connection. */
  private readonly retained = new Map<string, string>();

  constructor(private readonly opts: UplinkOptions) {
    if (opts.batch && (!Number.isInteger(opts.batch.max) || opts.batch.max < 1 || opts.batch.withinMs < 0)) {
      throw new RangeError(
        `upstream batch needs max >= 1 and within >= 0, got ${JSON.stringify(opts.batch)}`,
      );
    }
    this.topics = upstreamTopics(opts.gatewayId);
    this.now = opts.now ?? Date.now;
    const session = opts.session ?? { protocolVersion: 4, expiryMs: 0 };
    this.v5 = session.protocolVersion === 5;
    this.client = mqtt.connect(opts.url, {
      clientId: opts.clientId ?? `vigil-${opts.gatewayId}`,
      protocolVersion: session.protocolVersion,
      // [MQTT-3.1.2-4], [MQTT-3.1.2-5]: the broker resumes the session and delivers what it kept for it.
      clean: false,
      ...(session.protocolVersion === 5
        ? {
            properties: {
              sessionExpiryInterval: Math.min(MAX_EXPIRY_S, Math.ceil(session.expiryMs / 1000)),
            },
          }
        : {}),
      // `onConnect` subscribes on every connection, whether the broker kept the session or not.
      resubscribe: false,
      ...(opts.username !== undefined ? { username: opts.username } : {}),
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      ...(opts.tls?.ca !== undefined ? { ca: opts.tls.ca } : {}),
      ...(opts.tls?.cert !== undefined ? { cert: opts.tls.cert } : {}),
      ...(opts.tls?.key !== undefined ? { key: opts.tls.key } : {}),
      keepalive: Math.max(1, Math.round(opts.keepaliveMs / 1000)),
      reconnectPeriod: opts.reconnectMs,
      connectTimeout: 10_000,
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
    // mqtt.js calls this for every message and sends the PUBACK of a QoS 1 one when `done` is called.
    this.client.handleMessage = (packet, done) => this.receive(packet, done);
  }

  /** Starts connecting (and reconnecting after every loss) to the cloud broker. */
  connect(): void {
    if (this.closed || this.connecting) return;
    this.connecting = true;
    this.client.connect();
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
    for (const queued of expired) this.expire(queued.id, queued.action, now);
    return expired.length;
  }

  /**
   * Publishes `offline` (the will covers crashes) and closes the connection. Messages from the cloud still being
   * recorded get a moment to be acknowledged; those that do not make it are delivered again on the next start.
   * Actions in flight get a moment for their PUBACK; those unacknowledged then stay in the outbox, sent on the
   * next start. Every wait is bounded: a connection lost meanwhile, unnoticed yet, answers nothing.
   */
  async stop(): Promise<void> {
    this.closed = true;
    this.clearWake();
    await settledWithin(
      [...this.receiving].map((r) => r.settled),
      STOP_RECEIVING_MS,
    );
    for (const r of this.receiving) r.giveUp();
    if (!this.connecting) return;
    if (this.client.connected) {
      const lost = new Promise<void>((resolve) => this.client.once('close', () => resolve()));
      const offline = this.client
        .publishAsync(this.topics.status, 'offline', { qos: 1, retain: true })
        .catch((err: unknown) => this.opts.logger.warn({ err }, 'could not publish offline status'));
      await Promise.race([settledWithin([offline, this.everyAnswered()], STOP_ACKS_MS), lost]);
    }
    // mqtt.js would wait for their PUBACKs before it ends, and without a connection that is forever.
    this.dropOutgoingPublishes();
    // Without a connection there is no DISCONNECT to send: an attempt under way is cut, lest it connect later.
    const ended = this.client.endAsync(!this.client.connected);
    // The DISCONNECT is sent and the socket ended; a peer that never closes its side is cut off.
    if (!(await settledWithin([ended], STOP_ENDING_MS))) this.client.stream.destroy();
    await ended;
  }

  /**
   * A status message, QoS 1, dropped while disconnected. A retained one is kept and published again on every
   * connection until replaced: what the cloud retains catches up with what happened while it was away.
   */
  publishStatus(topic: string, payload: string, opts: { retain: boolean } = { retain: false }): void {
    if (opts.retain) this.retained.set(topic, payload);
    if (!this.client.connected) return;
    this.client.publish(topic, payload, { qos: 1, retain: opts.retain }, (err) => {
      if (err) this.opts.logger.warn({ err: err.message, topic }, 'upstream publish failed');
    });
  }

  /**
   * One message from the cloud, as mqtt.js reads it: it waits its turn, and mqtt.js reads on unless too many wait
   * (then the broker's messages wait in the socket, as they would for a slow disk).
   */
  private receive(packet: IPublishPacket, done: (err?: Error) => void): void {
    if (this.closed) {
      done(new Error('the uplink is closing'));
      return;
    }
    const bytes = packet.payload.length;
    this.waiting.push({ packet, connection: this.generation, bytes });
    this.waitingBytes += bytes;
    this.handing ??= this.handOver()
      .catch((err: unknown) => this.opts.logger.error({ err }, 'handing cloud messages over failed'))
      .finally(() => (this.handing = undefined));
    if (this.waiting.length < MAX_WAITING && this.waitingBytes < MAX_WAITING_BYTES) done(READ_ON);
    else this.readOn = () => done(READ_ON);
  }

  /** Hands the waiting messages over in the order they came, the next once the last is done with. */
  private async handOver(): Promise<void> {
    for (let next = this.waiting.shift(); next !== undefined; next = this.waiting.shift()) {
      this.waitingBytes -= next.bytes;
      const readOn = this.readOn;
      this.readOn = undefined;
      readOn?.();
      // Not handed over once its connection is gone: the broker delivers it again on the next one.
      if (this.closed || next.connection !== this.generation) continue;
      await this.handle(next.packet, next.connection);
    }
  }

  /**
   * Acknowledged once its handler is done with it, on the connection it came on. A handler that throws is a bug,
   * not the message's fault: the message is acknowledged so that it does not come back forever. Settles once
   * the message is acknowledged or given up.
   */
  private handle(packet: IPublishPacket, connection: number): Promise<void> {
    let handled: Promise<unknown> | void = undefined;
    try {
      handled = this.opts.onMessage?.({
        topic: packet.topic,
        payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload,
        qos: packet.qos,
        messageId: packet.messageId,
        dup: packet.dup,
        connection,
      });
    } catch (err) {
      this.opts.logger.error({ err, topic: packet.topic }, 'handling a message from the cloud failed');
    }
    if (!(handled instanceof Promise)) {
      this.acknowledge(packet, connection);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      let finished = false;
      const finish = (acknowledge: boolean): void => {
        if (finished) return;
        finished = true;
        this.receiving.delete(entry);
        if (acknowledge) this.acknowledge(packet, connection);
        resolve();
      };
      const entry = {
        settled: handled.then(
          () => finish(true),
          (err: unknown) => {
            this.opts.logger.debug(
              { err, topic: packet.topic, messageId: packet.messageId },
              'message from the cloud not acknowledged; the broker delivers it again',
            );
            finish(false);
          },
        ),
        giveUp: () => finish(false),
      };
      this.receiving.add(entry);
    });
  }

  /** The PUBACK of a QoS 1 message, on the connection it came on. */
  private acknowledge(packet: IPublishPacket, connection: number): void {
    const { qos, messageId } = packet;
    if (qos !== 1 || messageId === undefined) return;
    // A PUBACK sent on a later connection could acknowledge another message under the same id: the broker sends
    // this one again instead, and it is recognised then.
    if (connection !== this.generation || !this.client.connected) return;
    // MQTT 3.1.1 §3.4: type 4, remaining length 2, the packet id. MQTT 5 allows the same four bytes for success
    // without properties (MQTT 5.0 §3.4.2.1).
    this.client.stream.write(Buffer.from([0x40, 0x02, messageId >> 8, messageId & 0xff]));
  }

  private onConnect(): void {
    // A connection attempt that `stop` came too late to cut.
    if (this.closed) return;
    this.generation += 1;
    this.forgetInflight();
    // A new connection has a new socket: whatever the old one held is gone.
    this.telemetryWaitsForSocket = false;
    this.opts.logger.info({ url: this.opts.url }, 'upstream connected');
    // `online` (and the connected gauge) only once the cloud's topics are subscribed: what the cloud
    // sends after seeing it is not missed.
    const announce = (): void => {
      this.opts.onConnectionChange?.(true);
      this.client.publish(this.topics.status, 'online', { qos: 1, retain: true }, (err) => {
        if (err) this.opts.logger.warn({ err: err.message }, 'could not publish online status');
      });
      for (const [topic, payload] of this.retained) this.publishStatus(topic, payload, { retain: true });
    };
    const topics = this.opts.subscriptions?.() ?? [
      this.topics.rules,
      this.topics.profiles,
      this.topics.events,
      this.topics.commands,
    ];
    if (!this.opts.onMessage || topics.length === 0) announce();
    else {
      this.client.subscribe([...topics], { qos: 1 }, (err) => {
        if (err) this.opts.logger.warn({ err: err.message }, 'upstream subscribe failed');
        if (this.client.connected) announce();
      });
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

  /**
   * What was in flight on a lost connection is sent again from the outbox, in drain order, once connected:
   * mqtt.js' own copies of those publishes are dropped, or it would resend them first, ahead of higher
   * priorities decided meanwhile (the outbox, not mqtt.js' memory, is what survives a crash anyway).
   */
  private forgetInflight(): void {
    this.dropOutgoingPublishes();
    for (const id of this.inflight) this.held.delete(id);
    this.inflight.clear();
  }

  /** mqtt.js' copies of unacknowledged publishes: their callbacks get an error, nothing is sent again. */
  private dropOutgoingPublishes(): void {
    for (const [messageId, entry] of Object.entries(this.client.outgoing)) {
      if (entry.cmd === 'publish') this.client.removeOutgoingMessage(Number(messageId));
    }
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
        // Fewer than asked for: the next ones may be being read back from disk.
        const loading = ready.length < target ? this.drainOnceLoaded() : false;
        if (ready.length === 0) {
          this.lingerUntil = undefined;
          // No action waits to be sent: the telemetry lane's turn.
          if (!loading) this.sendTelemetry();
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

  /**
   * While the outbox reads the next actions back from disk, drains again once they are in; false when it reads
   * nothing.
   */
  private drainOnceLoaded(): boolean {
    const loading = this.opts.outbox.loading;
    if (loading === undefined) return false;
    if (!this.awaitingLoad) {
      this.awaitingLoad = true;
      void loading.then(() => {
        this.awaitingLoad = false;
        this.drain();
      });
    }
    return true;
  }

  /**
   * Publishes waiting telemetry at QoS 0 (at most once) while the socket takes it; when it holds too much unsent,
   * waits for it to drain, then looks at the actions first again. Only once the actions in flight are acknowledged:
   * mqtt.js writes a QoS 0 publish at once but a QoS 1 one after storing it, so telemetry would overtake them.
   */
  private sendTelemetry(): void {
    const lane = this.opts.telemetry;
    if (lane === undefined || this.telemetryWaitsForSocket || this.inflight.size > 0) return;
    const stream = this.client.stream;
    const properties = this.v5 ? { properties: { contentType: 'application/json' } } : {};
    while (lane.size > 0 && this.client.connected && !this.closed) {
      if (stream.writableLength >= TELEMETRY_SOCKET_BYTES) {
        this.telemetryWaitsForSocket = true;
        stream.once('drain', () => {
          this.telemetryWaitsForSocket = false;
          this.drain();
        });
        return;
      }
      const message = lane.take();
      if (message === undefined) return;
      this.client.publish(message.topic, message.payload, { qos: 0, ...properties });
      lane.sent();
    }
  }

  /** The next `n` actions to send; the expired ones met on the way are dropped. */
  private ready(n: number, now: number): Action[] {
    for (;;) {
      const next = this.opts.outbox.next(n, this.held);
      const fresh: Action[] = [];
      for (const action of next) {
        if (isExpired(action, now, this.policy)) this.expire(action.id, action, now);
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
    // Counted rather than a promise each: `stop` waits for the count to reach 0.
    this.unacknowledged += 1;
    let answered = false;
    const properties = this.v5 ? actionProperties(actions, this.policy, this.now()) : undefined;
    this.client.publish(
      this.topics.actions,
      body,
      { qos: 1, ...(properties ? { properties } : {}) },
      (err) => {
        if (!answered) {
          answered = true;
          this.answered();
        }
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
        const { outbox } = this.opts;
        const removed = (): void => {
          settle();
          this.kick();
        };
        // Without batching one action a publish: its removal's own promise, not one over a list of one.
        const removal =
          actions.length === 1
            ? outbox.markDelivered((actions[0] as Action).id, at)
            : Promise.all(actions.map((action) => outbox.markDelivered(action.id, at)));
        removal.then(removed, (removeErr: unknown) => {
          // Gone from memory already, never handed out again: the outbox writes the delete again itself, and
          // counts and logs the failure. The drain goes on meanwhile.
          this.opts.logger.debug(
            { err: removeErr, ids: actions.map((a) => a.id) },
            'outbox delete of acknowledged actions failed; the outbox tries it again',
          );
          removed();
        });
      },
    );
  }

  /** An action publish was answered (its PUBACK, or an error): `stop` may be waiting for the last one. */
  private answered(): void {
    this.unacknowledged -= 1;
    if (this.unacknowledged > 0 || this.allAnswered === undefined) return;
    const resolve = this.allAnswered;
    this.allAnswered = undefined;
    resolve();
  }

  /** Settles once every action publish made so far is answered. */
  private everyAnswered(): Promise<void> {
    if (this.unacknowledged === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const before = this.allAnswered;
      this.allAnswered = () => {
        before?.();
        resolve();
      };
    });
  }

  /** Drops an expired action: reported at once when in memory (`action`), else once the outbox read it back. */
  private expire(id: string, action: Action | undefined, now: number): void {
    this.held.add(id);
    // The outbox forgets it at once; the delete reaches the disk with the next batch.
    const removed = this.opts.outbox.remove(id);
    if (action !== undefined) this.opts.onExpired?.(action, now);
    removed.then(
      (read) => {
        this.held.delete(id);
        if (action === undefined && read !== undefined) this.opts.onExpired?.(read, now);
      },
      (err: unknown) => {
        this.held.delete(id);
        this.opts.logger.error({ err, id }, 'outbox remove of an expired action failed');
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

/**
 * MQTT 5 properties of a message of actions: `application/json`; the user properties `actionId` and `scenario`
 * (one of each per action of a batch, in order); and, when every action has a `ttl`, the message expiry
 * (MQTT 5.0 [MQTT-3.3.2-5]): the broker drops the message once the longest of their remaining ttls passes, so a consumer
 * that was away meanwhile never gets an action the gateway itself would no longer send.
 */
export function actionProperties(
  actions: readonly Action[],
  policy: Policy | undefined,
  now: number,
): IClientPublishOptions['properties'] {
  let remainingMs = 0;
  for (const action of actions) {
    const ttlMs = policy?.ttlMs.get(action.category);
    if (ttlMs === undefined) {
      remainingMs = Number.POSITIVE_INFINITY;
      break;
    }
    remainingMs = Math.max(remainingMs, action.decidedAt + ttlMs - now);
  }
  const one = actions.length === 1;
  return {
    contentType: 'application/json',
    userProperties: {
      actionId: one ? (actions[0]?.id ?? '') : actions.map((a) => a.id),
      scenario: one ? (actions[0]?.scenario ?? '') : actions.map((a) => a.scenario),
    },
    ...(Number.isFinite(remainingMs)
      ? { messageExpiryInterval: Math.min(MAX_EXPIRY_S, Math.max(1, Math.ceil(remainingMs / 1000))) }
      : {}),
  };
}

/** Waits for all of `promises` to settle, or `ms`, whichever comes first; true if they all settled. */
async function settledWithin(promises: Array<Promise<unknown>>, ms: number): Promise<boolean> {
  if (promises.length === 0) return true;
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    Promise.allSettled(promises).then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return settled;
}
