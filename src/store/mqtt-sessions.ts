import { Readable } from 'node:stream';
import MemoryPersistence, {
  type SessionClient,
  type StoredPacket,
  type StoredSubscription,
} from 'aedes-persistence/asyncPersistence.js';
import { ClientFilters, parseDeviceTopic } from '../shared/index.js';
import { decodeCbor, encodeCbor } from './cbor-encoding.js';
import type { RootLevel, Sublevel } from './level-types.js';
import { SessionWrites } from './session-writes.js';
import { storeIo } from './store-io.js';

/** How much the broker keeps for clients, and for how long. */
export interface MqttSessionLimits {
  /** Messages held for one client of a persistent session: queued while it is away, or awaiting its PUBACK. */
  maxQueued: number;
  /** Bytes those messages take on disk (keys and encoded values). */
  maxQueuedBytes: number;
  /** A persistent session whose client has not been connected for this long is discarded. */
  expiryMs: number;
  /** Retained messages under one device's topics (`devices/{id}/…`). */
  retainedPerDevice: number;
  /** Retained messages in all. */
  retainedCount: number;
  /** Bytes they take on disk, in all. */
  retainedBytes: number;
}

export const DEFAULT_MQTT_SESSION_LIMITS: MqttSessionLimits = {
  maxQueued: 1_000,
  maxQueuedBytes: 1024 * 1024,
  expiryMs: 7 * 24 * 3_600_000,
  retainedPerDevice: 100,
  retainedCount: 10_000,
  retainedBytes: 16 * 1024 * 1024,
};

/** What was not kept for being over a limit: a message for a client, or a retained message. */
export type SessionDrop =
  | { what: 'queued'; limit: 'max-queued' | 'max-queued-bytes'; clientId: string; topic: string }
  | { what: 'retained'; limit: 'per-device' | 'max-count' | 'max-bytes'; topic: string };

export interface MqttSessionsOptions {
  limits?: Partial<MqttSessionLimits> | undefined;
  /** Writes are synced this often; default 1 s. */
  syncIntervalMs?: number | undefined;
  /** Wall-clock ms (session expiry outlasts restarts); default `Date.now`. */
  now?: (() => number) | undefined;
  onDrop?: ((drop: SessionDrop) => void) | undefined;
  /** A session expired: its subscriptions and the `queued` messages it held were discarded. */
  onExpired?: ((clientId: string, queued: number) => void) | undefined;
  onWriteError?: ((err: unknown, retryInMs: number) => void) | undefined;
  onWritesRecovered?: (() => void) | undefined;
}

/** What the store holds now, for the gauges. */
export interface MqttSessionStats {
  sessions: number;
  queued: number;
  queuedBytes: number;
  retained: number;
  retainedBytes: number;
}

interface Queued {
  readonly key: string;
  packet: StoredPacket;
  bytes: number;
}

interface Queue {
  readonly entries: Queued[];
  bytes: number;
}

interface Session {
  seenAtMs: number;
  connected: boolean;
}

// Keys: a prefix, then what the record is of. A client id may hold any character but U+0000, so it comes last.
const SUBSCRIPTIONS = 's!'; // s!{clientId} → the client's subscriptions
const QUEUED = 'o!'; // o!{seq, 14 hex digits}!{clientId} → a message for the client
const INCOMING = 'i!'; // i!{messageId}!{clientId} → a QoS 2 publish from the client, awaiting its PUBREL
const WILL = 'w!'; // w!{clientId} → its will
const RETAINED = 'r!'; // r!{topic} → the retained message
const SESSION = 'c!'; // c!{clientId} → when its client of a persistent session was last connected
const MARK = 'm!'; // written by the periodic sync

const SEQ_DIGITS = 14;

/**
 * The embedded broker's sessions and retained messages, durable in the gateway's LevelDB: an aedes persistence
 * (aedes-persistence's interface, checked by its abstract test suite). Reads come from memory — aedes-persistence's
 * own in-memory structures, which this class extends — and LevelDB holds the durable copy, loaded at start and
 * written behind, one batch per turn (`SessionWrites`).
 *
 * Bounded: a client of a persistent session is held at most `maxQueued` messages and `maxQueuedBytes`; past
 * either, new messages for it are not kept (an online client is still sent them, as aedes sends them, but they are
 * not kept for a redelivery). Retained messages are bounded per device and in total; past a bound a new one is
 * not kept (the one it would replace stays). A session whose client stays away `expiryMs` is discarded.
 */
export class MqttSessions extends MemoryPersistence {
  readonly limits: Readonly<MqttSessionLimits>;
  readonly #writes: SessionWrites;
  readonly #opts: MqttSessionsOptions;
  readonly #now: () => number;
  #broker: { id: string } | undefined;
  readonly #queues = new Map<string, Queue>();
  #queued = 0;
  #queuedBytes = 0;
  #nextSeq = 0;
  readonly #sessions = new Map<string, Session>();
  // Clients whose subscriptions are on disk.
  readonly #subscribed = new Set<string>();
  // Message ids of the QoS 2 publishes each client has on disk.
  readonly #incoming = new Map<string, Set<number>>();
  readonly #wills = new Map<string, StoredPacket>();
  // The filters of the subscriptions held, as they are added (before the trie) and removed (after it).
  readonly #filters = new ClientFilters();
  readonly #retained = new Map<string, { bytes: number; device: string | undefined }>();
  readonly #retainedByDevice = new Map<string, number>();
  #retainedBytes = 0;
  #unreadable = 0;
  readonly #sweeps: NodeJS.Timeout;
  #closing: Promise<void> | undefined;

  private constructor(
    root: RootLevel,
    level: Sublevel<Buffer>,
    limits: MqttSessionLimits,
    opts: MqttSessionsOptions,
  ) {
    super();
    this.limits = limits;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#writes = new SessionWrites(root, level, {
      syncIntervalMs: opts.syncIntervalMs ?? 1_000,
      onWriteError: opts.onWriteError,
      onRecovered: opts.onWritesRecovered,
    });
    const sweepMs = Math.min(60_000, Math.max(50, Math.floor(limits.expiryMs / 4)));
    this.#sweeps = setInterval(() => void this.expire(), sweepMs);
    this.#sweeps.unref();
  }

  /**
   * Loads what a previous run left in the sublevel `name` of `root` (default `mqtt`), discarding the sessions
   * that expired meanwhile.
   */
  static async open(
    root: RootLevel,
    opts: MqttSessionsOptions & { name?: string | undefined } = {},
  ): Promise<MqttSessions> {
    const level = root.sublevel<string, Buffer>(opts.name ?? 'mqtt', { valueEncoding: 'buffer' });
    const limits = { ...DEFAULT_MQTT_SESSION_LIMITS, ...opts.limits };
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isSafeInteger(value) || value < 1)
        throw new RangeError(`MQTT session limit ${name} must be a positive integer, got ${value}`);
    }
    const sessions = new MqttSessions(root, level, limits, opts);
    await storeIo('loading MQTT sessions', async () => {
      for await (const [key, value] of level.iterator()) await sessions.#load(key, value);
    });
    for (const id of [...sessions.#subscribed, ...sessions.#queues.keys(), ...sessions.#incoming.keys()])
      sessions.#touch(id);
    await sessions.expire();
    return sessions;
  }

  /** Records found at start that could not be read; they are left on disk and ignored. */
  get unreadableOnOpen(): number {
    return this.#unreadable;
  }

  stats(): MqttSessionStats {
    return {
      sessions: this.#sessions.size,
      queued: this.#queued,
      queuedBytes: this.#queuedBytes,
      retained: this.#retained.size,
      retainedBytes: this.#retainedBytes,
    };
  }

  /** Every client's subscriptions, by client id. */
  async subscriptionsHeld(): Promise<Array<[string, StoredSubscription[]]>> {
    const held: Array<[string, StoredSubscription[]]> = [];
    for (const id of this.#subscribed) held.push([id, await super.subscriptionsByClient({ id })]);
    return held;
  }

  override async setup(broker: { id: string }): Promise<void> {
    this.#broker = broker;
    await super.setup(broker);
  }

  /** A client connected; with a persistent session (`clean` false), its session does not expire while it stays. */
  sessionConnected(clientId: string, clean: boolean): void {
    if (clean) return this.#endSession(clientId);
    this.#sessions.set(clientId, { seenAtMs: this.#now(), connected: true });
    this.#writes.put(SESSION + clientId, encodeCbor(this.#now()));
  }

  /** A client of a persistent session went away: its session expires `expiryMs` from now. */
  sessionDisconnected(clientId: string, clean: boolean): void {
    if (clean) return;
    this.#sessions.set(clientId, { seenAtMs: this.#now(), connected: false });
    this.#writes.put(SESSION + clientId, encodeCbor(this.#now()));
  }

  /** Discards the sessions whose client has been away `expiryMs` or longer; resolves with how many. */
  async expire(): Promise<number> {
    if (this.#closing !== undefined) return 0;
    const before = this.#now() - this.limits.expiryMs;
    let expired = 0;
    for (const clientId of [...this.#sessions.keys()]) {
      // As it is now: a client may have come back while an earlier session was discarded.
      const session = this.#sessions.get(clientId);
      if (session === undefined || session.connected || session.seenAtMs > before) continue;
      const queued = await this.#discard(clientId);
      this.#opts.onExpired?.(clientId, queued);
      expired += 1;
    }
    return expired;
  }

  override async storeRetained(packet: StoredPacket): Promise<void> {
    const topic = packet.topic ?? '';
    // [MQTT-3.3.1-10] [MQTT-3.3.1-11] An empty payload clears the topic's retained message and is not kept.
    if (packet.payload === undefined || packet.payload.length === 0) {
      if (this.#forgetRetained(topic)) this.#writes.del(RETAINED + topic);
      return super.storeRetained(packet);
    }
    const value = encodeCbor(plainPacket(packet));
    const bytes = sizeOf(RETAINED + topic, value);
    const refused = this.#retainedRefusal(topic, bytes);
    if (refused !== undefined) {
      this.#opts.onDrop?.({ what: 'retained', limit: refused, topic });
      return;
    }
    this.#forgetRetained(topic);
    this.#keepRetained(topic, bytes);
    this.#writes.put(RETAINED + topic, value);
    return super.storeRetained(packet);
  }

  /**
   * aedes asks for a client's subscriptions when it connects with a persistent session, before anything else of
   * it: the client is back, and its session no longer expires from the time it went away. Whether the session is
   * still there is decided here, in order with the expiry (with `threads: 2` the edge thread asks across).
   */
  override async subscriptionsByClient(client: SessionClient): Promise<StoredSubscription[]> {
    const session = this.#sessions.get(client.id);
    if (session !== undefined && !session.connected) session.seenAtMs = this.#now();
    return super.subscriptionsByClient(client);
  }

  /** Whether a subscription held could match `topic`: false, and the broker need not ask `subscriptionsByTopic`. */
  holdsSubscriptionMatching(topic: string): boolean {
    return this.#filters.matchesAny(topic);
  }

  override async addSubscriptions(client: SessionClient, subs: StoredSubscription[]): Promise<void> {
    this.#filters.add(
      client.id,
      subs.map((sub) => sub.topic),
    );
    await super.addSubscriptions(client, subs);
    await this.#writeSubscriptions(client.id);
    this.#touch(client.id);
  }

  override async removeSubscriptions(client: SessionClient, topics: string[]): Promise<void> {
    await super.removeSubscriptions(client, topics);
    this.#filters.remove(client.id, topics);
    await this.#writeSubscriptions(client.id);
  }

  override async cleanSubscriptions(client: SessionClient): Promise<void> {
    await super.cleanSubscriptions(client);
    this.#filters.clean(client.id);
    if (this.#subscribed.delete(client.id)) this.#writes.del(SUBSCRIPTIONS + client.id);
  }

  async outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    this.#enqueue([sub], packet);
    return Promise.resolve();
  }

  async outgoingEnqueueCombi(subs: ReadonlyArray<{ clientId: string }>, packet: StoredPacket): Promise<void> {
    this.#enqueue(subs, packet);
    return Promise.resolve();
  }

  /**
   * A message is about to be sent with a packet identifier (or its PUBREC came: it becomes a PUBREL). One that is
   * not held — its client's queue was full when it came — is sent all the same, just not kept for a redelivery:
   * refusing here would make aedes close the client's connection.
   */
  async outgoingUpdate(client: SessionClient, packet: StoredPacket): Promise<void> {
    const queue = this.#queues.get(client.id);
    for (const entry of queue?.entries ?? []) {
      const held = entry.packet;
      if (held.brokerId === packet.brokerId) {
        // Packet identifiers wrap around at 65535: the broker's counter tells two messages apart.
        if (held.brokerCounter !== packet.brokerCounter) continue;
        held.messageId = packet.messageId;
      } else if (held.messageId === packet.messageId) {
        entry.packet = packet;
      } else {
        continue;
      }
      this.#rewrite(queue as Queue, entry);
      return Promise.resolve();
    }
    return Promise.resolve();
  }

  /** The client acknowledged a message (PUBACK, PUBCOMP): it leaves the queue. Resolves with it, if it was held. */
  async outgoingClearMessageId(
    client: SessionClient,
    packet: { messageId?: number | undefined },
  ): Promise<StoredPacket | undefined> {
    const messageId = packet.messageId;
    const queue = this.#queues.get(client.id);
    if (messageId === undefined || queue === undefined) return Promise.resolve(undefined);
    const at = queue.entries.findIndex((entry) => entry.packet.messageId === messageId);
    if (at < 0) return Promise.resolve(undefined);
    const entry = queue.entries[at] as Queued;
    this.#unqueue(client.id, queue, at);
    return Promise.resolve(entry.packet);
  }

  outgoingStream(client: SessionClient): Readable {
    const entries = this.#queues.get(client.id)?.entries ?? [];
    return Readable.from(entries.map((entry) => entry.packet));
  }

  override async incomingStorePacket(client: SessionClient, packet: StoredPacket): Promise<void> {
    await super.incomingStorePacket(client, packet);
    const messageId = packet.messageId;
    if (messageId === undefined) return;
    let ids = this.#incoming.get(client.id);
    if (ids === undefined) this.#incoming.set(client.id, (ids = new Set()));
    ids.add(messageId);
    this.#writes.put(incomingKey(messageId, client.id), encodeCbor(plainPacket(packet)));
  }

  override async incomingDelPacket(client: SessionClient, packet: { messageId?: number }): Promise<void> {
    await super.incomingDelPacket(client, packet);
    const ids = this.#incoming.get(client.id);
    if (packet.messageId === undefined || ids?.delete(packet.messageId) !== true) return;
    if (ids.size === 0) this.#incoming.delete(client.id);
    this.#writes.del(incomingKey(packet.messageId, client.id));
  }

  override async cleanIncoming(client: SessionClient): Promise<void> {
    await super.cleanIncoming(client);
    const ids = this.#incoming.get(client.id);
    if (ids === undefined) return;
    this.#incoming.delete(client.id);
    for (const messageId of ids) this.#writes.del(incomingKey(messageId, client.id));
  }

  /** Keeps the will of a client, marked with this broker's id: a will of a broker that is gone is published. */
  async putWill(client: SessionClient, packet: StoredPacket): Promise<void> {
    packet.brokerId = this.#broker?.id ?? '';
    packet.clientId = client.id;
    this.#wills.set(client.id, packet);
    this.#writes.put(WILL + client.id, encodeCbor(plainPacket(packet)));
    return Promise.resolve();
  }

  async getWill(client: SessionClient): Promise<StoredPacket | undefined> {
    return Promise.resolve(this.#wills.get(client.id));
  }

  async delWill(client: SessionClient): Promise<StoredPacket | undefined> {
    const will = this.#wills.get(client.id);
    if (will !== undefined) {
      this.#wills.delete(client.id);
      this.#writes.del(WILL + client.id);
    }
    return Promise.resolve(will);
  }

  /** The wills of brokers not in `brokers` (those alive): after a restart, the previous run's. */
  streamWill(brokers: Record<string, unknown> = {}): Readable {
    const wills = [...this.#wills.values()].filter((will) => brokers[will.brokerId ?? ''] === undefined);
    return Readable.from(wills);
  }

  /** Resolves once everything so far is written and synced. */
  flush(): Promise<void> {
    return this.#writes.flush(true);
  }

  /** Writes and syncs what is waiting; nothing is written after. */
  close(): Promise<void> {
    clearInterval(this.#sweeps);
    return (this.#closing ??= this.#writes.close());
  }

  override async destroy(): Promise<void> {
    await this.close();
    await super.destroy();
  }

  #enqueue(subs: ReadonlyArray<{ clientId: string }>, packet: StoredPacket): void {
    if (subs.length === 0) return;
    const value = encodeCbor(plainPacket(copyPacket(packet)));
    for (const { clientId } of subs) {
      const key = `${QUEUED}${this.#nextSeq.toString(16).padStart(SEQ_DIGITS, '0')}!${clientId}`;
      this.#nextSeq += 1;
      const bytes = sizeOf(key, value);
      let queue = this.#queues.get(clientId);
      const limit =
        (queue?.entries.length ?? 0) >= this.limits.maxQueued
          ? 'max-queued'
          : (queue?.bytes ?? 0) + bytes > this.limits.maxQueuedBytes
            ? 'max-queued-bytes'
            : undefined;
      if (limit !== undefined) {
        this.#opts.onDrop?.({ what: 'queued', limit, clientId, topic: packet.topic ?? '' });
        continue;
      }
      if (queue === undefined) this.#queues.set(clientId, (queue = { entries: [], bytes: 0 }));
      queue.entries.push({ key, packet: copyPacket(packet), bytes });
      queue.bytes += bytes;
      this.#queued += 1;
      this.#queuedBytes += bytes;
      this.#writes.put(key, value, true);
    }
  }

  #rewrite(queue: Queue, entry: Queued): void {
    const value = encodeCbor(plainPacket(entry.packet));
    const bytes = sizeOf(entry.key, value);
    queue.bytes += bytes - entry.bytes;
    this.#queuedBytes += bytes - entry.bytes;
    entry.bytes = bytes;
    this.#writes.put(entry.key, value);
  }

  #unqueue(clientId: string, queue: Queue, at: number): void {
    const [entry] = queue.entries.splice(at, 1);
    if (entry === undefined) return;
    queue.bytes -= entry.bytes;
    this.#queued -= 1;
    this.#queuedBytes -= entry.bytes;
    if (queue.entries.length === 0) this.#queues.delete(clientId);
    this.#writes.del(entry.key);
  }

  async #writeSubscriptions(clientId: string): Promise<void> {
    const subs = await super.subscriptionsByClient({ id: clientId });
    if (subs.length === 0) {
      if (this.#subscribed.delete(clientId)) this.#writes.del(SUBSCRIPTIONS + clientId);
      return;
    }
    this.#subscribed.add(clientId);
    this.#writes.put(SUBSCRIPTIONS + clientId, encodeCbor(subs.map(definedFields)));
  }

  // Known as a session from now, if it was not already.
  #touch(clientId: string): void {
    if (!this.#sessions.has(clientId))
      this.#sessions.set(clientId, { seenAtMs: this.#now(), connected: false });
  }

  #endSession(clientId: string): void {
    if (this.#sessions.delete(clientId)) this.#writes.del(SESSION + clientId);
  }

  // Everything of a session but its will (which belongs to the connection); resolves with the messages it held.
  async #discard(clientId: string): Promise<number> {
    this.#endSession(clientId);
    await this.cleanSubscriptions({ id: clientId });
    await this.cleanIncoming({ id: clientId });
    const queue = this.#queues.get(clientId);
    const queued = queue?.entries.length ?? 0;
    while (queue !== undefined && queue.entries.length > 0)
      this.#unqueue(clientId, queue, queue.entries.length - 1);
    return queued;
  }

  #retainedRefusal(topic: string, bytes: number): 'per-device' | 'max-count' | 'max-bytes' | undefined {
    const old = this.#retained.get(topic);
    const device = old === undefined ? parseDeviceTopic(topic).deviceId : undefined;
    if (device !== undefined && (this.#retainedByDevice.get(device) ?? 0) >= this.limits.retainedPerDevice)
      return 'per-device';
    if (old === undefined && this.#retained.size >= this.limits.retainedCount) return 'max-count';
    if (this.#retainedBytes - (old?.bytes ?? 0) + bytes > this.limits.retainedBytes) return 'max-bytes';
    return undefined;
  }

  #keepRetained(topic: string, bytes: number): void {
    const device = parseDeviceTopic(topic).deviceId;
    this.#retained.set(topic, { bytes, device });
    this.#retainedBytes += bytes;
    if (device !== undefined)
      this.#retainedByDevice.set(device, (this.#retainedByDevice.get(device) ?? 0) + 1);
  }

  // True when the topic had a retained message.
  #forgetRetained(topic: string): boolean {
    const old = this.#retained.get(topic);
    if (old === undefined) return false;
    this.#retained.delete(topic);
    this.#retainedBytes -= old.bytes;
    if (old.device !== undefined) {
      const left = (this.#retainedByDevice.get(old.device) ?? 1) - 1;
      if (left > 0) this.#retainedByDevice.set(old.device, left);
      else this.#retainedByDevice.delete(old.device);
    }
    return true;
  }

  async #load(key: string, value: Buffer): Promise<void> {
    const prefix = key.slice(0, 2);
    const rest = key.slice(2);
    const decoded = decodeSafely(value);
    if (prefix === MARK) return;
    if (prefix === SUBSCRIPTIONS && Array.isArray(decoded) && decoded.every(isSubscription)) {
      this.#filters.add(
        rest,
        decoded.map((sub) => sub.topic),
      );
      await super.addSubscriptions({ id: rest }, decoded);
      this.#subscribed.add(rest);
    } else if (prefix === QUEUED && isPacket(decoded) && rest.charAt(SEQ_DIGITS) === '!') {
      const seq = Number.parseInt(rest.slice(0, SEQ_DIGITS), 16);
      const clientId = rest.slice(SEQ_DIGITS + 1);
      let queue = this.#queues.get(clientId);
      if (queue === undefined) this.#queues.set(clientId, (queue = { entries: [], bytes: 0 }));
      const bytes = sizeOf(key, value);
      queue.entries.push({ key, packet: decoded, bytes });
      queue.bytes += bytes;
      this.#queued += 1;
      this.#queuedBytes += bytes;
      this.#nextSeq = Math.max(this.#nextSeq, seq + 1);
    } else if (prefix === INCOMING && isPacket(decoded) && decoded.messageId !== undefined) {
      const clientId = rest.slice(rest.indexOf('!') + 1);
      await super.incomingStorePacket({ id: clientId }, decoded);
      let ids = this.#incoming.get(clientId);
      if (ids === undefined) this.#incoming.set(clientId, (ids = new Set()));
      ids.add(decoded.messageId);
    } else if (prefix === WILL && isPacket(decoded)) {
      this.#wills.set(rest, decoded);
    } else if (prefix === RETAINED && isPacket(decoded)) {
      await super.storeRetained(decoded);
      this.#keepRetained(rest, sizeOf(key, value));
    } else if (prefix === SESSION && typeof decoded === 'number') {
      this.#sessions.set(rest, { seenAtMs: decoded, connected: false });
    } else {
      this.#unreadable += 1;
    }
  }
}

function incomingKey(messageId: number, clientId: string): string {
  return `${INCOMING}${messageId}!${clientId}`;
}

function sizeOf(key: string, value: Buffer): number {
  return Buffer.byteLength(key) + value.length;
}

/** A copy as aedes-packet makes one: the broker's id and counter kept, no packet identifier yet. */
function copyPacket(original: StoredPacket): StoredPacket {
  const copy: StoredPacket = { cmd: original.cmd };
  for (const field of ['clientId', 'nl', 'properties', 'messageExpiry'] as const) {
    if (Object.hasOwn(original, field)) (copy as Record<string, unknown>)[field] = original[field];
  }
  copy.brokerId = original.brokerId;
  copy.brokerCounter = original.brokerCounter ?? 0;
  copy.topic = original.topic;
  copy.payload = original.payload ?? Buffer.alloc(0);
  copy.qos = original.qos ?? 0;
  copy.retain = original.retain ?? false;
  copy.dup = original.dup ?? false;
  // [MQTT-2.3.1-5] A packet identifier is given when the message is sent.
  if ((copy.qos ?? 0) > 0 || copy.cmd !== 'publish') copy.messageId = undefined;
  return copy;
}

/** The fields of a packet that are set, payload as bytes: what goes to disk. */
function plainPacket(packet: StoredPacket): Record<string, unknown> {
  const plain = definedFields(packet);
  if (typeof plain.payload === 'string') plain.payload = Buffer.from(plain.payload);
  delete plain.length;
  return plain;
}

function definedFields(value: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, v] of Object.entries(value)) if (v !== undefined) out[field] = v;
  return out;
}

function decodeSafely(value: Buffer): unknown {
  try {
    return decodeCbor(value);
  } catch {
    return undefined;
  }
}

function isPacket(value: unknown): value is StoredPacket {
  if (typeof value !== 'object' || value === null) return false;
  const { cmd, payload, messageId } = value as Record<string, unknown>;
  return (
    typeof cmd === 'string' &&
    (payload === undefined || Buffer.isBuffer(payload)) &&
    (messageId === undefined || typeof messageId === 'number')
  );
}

function isSubscription(value: unknown): value is StoredSubscription {
  if (typeof value !== 'object' || value === null) return false;
  const { topic, qos } = value as Record<string, unknown>;
  return typeof topic === 'string' && typeof qos === 'number';
}
