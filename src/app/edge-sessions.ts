import { Readable } from 'node:stream';
import MemoryPersistence, {
  type SessionClient,
  type StoredPacket,
  type StoredSubscription,
} from 'aedes-persistence/asyncPersistence.js';
import type { SessionPersistence } from '../broker/index.js';
import { ClientFilters } from '../shared/index.js';
import { asPacket, type SessionMethod } from './edge-wire.js';

/** Sends a call to the decision thread; resolves with its answer. */
export type SessionCall = (method: SessionMethod, args: unknown[]) => Promise<unknown>;
/** Sends a call that wants no answer. */
export type SessionTell = (method: SessionMethod, args: unknown[]) => void;

/**
 * The edge thread's aedes persistence (`threads: 2`): the sessions and retained messages are the decision thread's
 * `MqttSessions`, in its LevelDB, and each call crosses there as a record (the records of a turn cross together).
 * A call that changes the store does not wait: `MqttSessions` applies it as it arrives, in the order sent, and
 * writes behind as with one thread, so a call that reads (an answer crossing back, by id; a stream as one list)
 * sees every change sent before it. Waiting would let a message that needs no such call (QoS 0, not retained)
 * overtake one that does, from the same publisher or to the same subscriber [MQTT-4.6.0-5]. Only the subscriptions
 * are also kept here, a copy made at start and changed with each call that changes them, a session's expiry and
 * what the decision thread answers when a client of a persistent session connects (`subscriptionsByClient`):
 * a QoS 1 publish is matched against them (`subscriptionsByTopic`, or first `holdsSubscriptionMatching`, which lets
 * the broker skip the match), and a device event has no persistent subscriber, so nothing of it crosses.
 */
export class EdgeSessions implements SessionPersistence {
  readonly #subscriptions = new MemoryPersistence();
  // The filters of the copy, as they are added (before it) and removed (after it).
  readonly #filters = new ClientFilters();
  /** The broker it serves, once set up (aedes-persistence's interface has it). */
  broker: { id: string } | undefined;

  constructor(
    private readonly call: SessionCall,
    private readonly tell: SessionTell,
  ) {}

  async setup(broker: { id: string }): Promise<void> {
    this.broker = broker;
    await this.#subscriptions.setup(broker);
    const held = (await this.call('setup', [{ id: broker.id }])) as Array<[string, StoredSubscription[]]>;
    for (const [id, subs] of held) await this.#add(id, subs);
  }

  sessionConnected(clientId: string, clean: boolean): void {
    this.tell('sessionConnected', [clientId, clean]);
  }

  sessionDisconnected(clientId: string, clean: boolean): void {
    this.tell('sessionDisconnected', [clientId, clean]);
  }

  /** The decision thread discarded the session of `clientId`. */
  expired(clientId: string): void {
    void this.#clean(clientId);
  }

  /** Whether a subscription of the copy could match `topic`: false, and the broker need not ask `subscriptionsByTopic`. */
  holdsSubscriptionMatching(topic: string): boolean {
    return this.#filters.matchesAny(topic);
  }

  async storeRetained(packet: StoredPacket): Promise<void> {
    this.tell('storeRetained', [plain(packet)]);
    return Promise.resolve();
  }

  createRetainedStream(pattern: string): Readable {
    return this.stream('createRetainedStream', [pattern]);
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    return this.stream('createRetainedStreamCombi', [patterns]);
  }

  async addSubscriptions(client: SessionClient, subs: StoredSubscription[]): Promise<void> {
    this.tell('addSubscriptions', [{ id: client.id }, subs.map(plain)]);
    await this.#add(client.id, subs);
  }

  async removeSubscriptions(client: SessionClient, topics: string[]): Promise<void> {
    this.tell('removeSubscriptions', [{ id: client.id }, topics]);
    await this.#subscriptions.removeSubscriptions({ id: client.id }, topics);
    this.#filters.remove(client.id, topics);
  }

  async cleanSubscriptions(client: SessionClient): Promise<void> {
    this.tell('cleanSubscriptions', [{ id: client.id }]);
    await this.#clean(client.id);
  }

  /**
   * Asked when a client connects with a persistent session, and answered by the decision thread, where the session
   * may have expired meanwhile: its answer comes after any expiry it sent before (`expired`), and the session does
   * not expire after it (`MqttSessions.subscriptionsByClient`). The copy here becomes what it answered.
   */
  async subscriptionsByClient(client: SessionClient): Promise<StoredSubscription[]> {
    const subs = (await this.call('subscriptionsByClient', [{ id: client.id }])) as StoredSubscription[];
    await this.#clean(client.id);
    if (subs.length > 0) await this.#add(client.id, subs);
    return subs;
  }

  subscriptionsByTopic(topic: string): ReturnType<MemoryPersistence['subscriptionsByTopic']> {
    return this.#subscriptions.subscriptionsByTopic(topic);
  }

  countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return this.#subscriptions.countOffline();
  }

  async outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    this.tell('outgoingEnqueue', [{ clientId: sub.clientId }, plain(packet)]);
    return Promise.resolve();
  }

  /** Called for every QoS 1 publish (a device event too), mostly with no persistent subscriber: nothing crosses. */
  async outgoingEnqueueCombi(subs: ReadonlyArray<{ clientId: string }>, packet: StoredPacket): Promise<void> {
    if (subs.length === 0) return Promise.resolve();
    const clients = subs.map((sub) => ({ clientId: sub.clientId }));
    this.tell('outgoingEnqueueCombi', [clients, plain(packet)]);
    return Promise.resolve();
  }

  async outgoingUpdate(client: SessionClient, packet: StoredPacket): Promise<void> {
    this.tell('outgoingUpdate', [{ id: client.id }, plain(packet)]);
    return Promise.resolve();
  }

  /**
   * Every PUBACK comes here. A client of a clean session has no messages in the store (aedes queues only for
   * persistent ones), so its PUBACKs do not cross.
   */
  async outgoingClearMessageId(
    client: SessionClient & { clean?: boolean },
    packet: { messageId?: number | undefined },
  ): Promise<StoredPacket | undefined> {
    if (client.clean === true) return undefined;
    const args = [{ id: client.id }, plain({ messageId: packet.messageId })];
    return asPacket((await this.call('outgoingClearMessageId', args)) ?? undefined) as
      StoredPacket | undefined;
  }

  outgoingStream(client: SessionClient): Readable {
    return this.stream('outgoingStream', [{ id: client.id }]);
  }

  async incomingStorePacket(client: SessionClient, packet: StoredPacket): Promise<void> {
    this.tell('incomingStorePacket', [{ id: client.id }, plain(packet)]);
    return Promise.resolve();
  }

  async incomingGetPacket(client: SessionClient, packet: { messageId?: number }): Promise<StoredPacket> {
    const args = [{ id: client.id }, plain({ messageId: packet.messageId })];
    return asPacket((await this.call('incomingGetPacket', args)) as StoredPacket);
  }

  async incomingDelPacket(client: SessionClient, packet: { messageId?: number }): Promise<void> {
    this.tell('incomingDelPacket', [{ id: client.id }, plain({ messageId: packet.messageId })]);
    return Promise.resolve();
  }

  async cleanIncoming(client: SessionClient): Promise<void> {
    this.tell('cleanIncoming', [{ id: client.id }]);
    return Promise.resolve();
  }

  /** As `MqttSessions.putWill`, which marks the will with the broker's id and its client's. */
  async putWill(client: SessionClient, packet: StoredPacket): Promise<void> {
    packet.brokerId = this.broker?.id ?? '';
    packet.clientId = client.id;
    this.tell('putWill', [{ id: client.id }, plain(packet)]);
    return Promise.resolve();
  }

  async getWill(client: SessionClient): Promise<StoredPacket | undefined> {
    return asPacket((await this.call('getWill', [{ id: client.id }])) ?? undefined) as
      StoredPacket | undefined;
  }

  async delWill(client: SessionClient): Promise<StoredPacket | undefined> {
    return asPacket((await this.call('delWill', [{ id: client.id }])) ?? undefined) as
      StoredPacket | undefined;
  }

  streamWill(brokers: Record<string, unknown> = {}): Readable {
    return this.stream('streamWill', [Object.fromEntries(Object.keys(brokers).map((id) => [id, true]))]);
  }

  getClientList(topic: string): Readable {
    return this.stream('getClientList', [topic]);
  }

  /** The store is the decision thread's, closed there. */
  async destroy(): Promise<void> {
    await this.#subscriptions.destroy();
  }

  async #add(clientId: string, subs: StoredSubscription[]): Promise<void> {
    this.#filters.add(
      clientId,
      subs.map((sub) => sub.topic),
    );
    await this.#subscriptions.addSubscriptions({ id: clientId }, subs);
  }

  async #clean(clientId: string): Promise<void> {
    await this.#subscriptions.cleanSubscriptions({ id: clientId });
    this.#filters.clean(clientId);
  }

  private stream(method: SessionMethod, args: unknown[]): Readable {
    const call = this.call;
    return Readable.from(
      (async function* () {
        yield* (await call(method, args)) as unknown[];
      })(),
    );
  }
}

/** The fields of a packet or subscription that are set, as data (not what aedes hangs on a packet): what crosses. */
function plain(value: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, v] of Object.entries(value))
    if (v !== undefined && typeof v !== 'function') out[field] = v;
  return out;
}
