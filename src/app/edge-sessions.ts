import { Readable } from 'node:stream';
import MemoryPersistence, {
  type SessionClient,
  type StoredPacket,
  type StoredSubscription,
} from 'aedes-persistence/asyncPersistence.js';
import type { SessionPersistence } from '../broker/index.js';
import { asPacket, type SessionMethod } from './edge-wire.js';

/** Sends a call to the decision thread; resolves with its answer. */
export type SessionCall = (method: SessionMethod, args: unknown[]) => Promise<unknown>;
/** Sends a call that wants no answer. */
export type SessionTell = (method: SessionMethod, args: unknown[]) => void;

/**
 * The edge thread's aedes persistence (`threads: 2`): the sessions and retained messages are the decision thread's
 * `MqttSessions`, in its LevelDB, and each call crosses there as a record and waits for its answer (the records of
 * a turn cross together). Streams come back as one list. Only the subscriptions are also kept here, a copy made
 * at start and changed with each call that changes them (and a session's expiry): aedes matches every QoS 1
 * publish against them (`subscriptionsByTopic`), which would otherwise cross twice per device event.
 */
export class EdgeSessions implements SessionPersistence {
  readonly #subscriptions = new MemoryPersistence();
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
    for (const [id, subs] of held) await this.#subscriptions.addSubscriptions({ id }, subs);
  }

  sessionConnected(clientId: string, clean: boolean): void {
    this.tell('sessionConnected', [clientId, clean]);
  }

  sessionDisconnected(clientId: string, clean: boolean): void {
    this.tell('sessionDisconnected', [clientId, clean]);
  }

  /** The decision thread discarded the session of `clientId`. */
  expired(clientId: string): void {
    void this.#subscriptions.cleanSubscriptions({ id: clientId });
  }

  async storeRetained(packet: StoredPacket): Promise<void> {
    await this.call('storeRetained', [plain(packet)]);
  }

  createRetainedStream(pattern: string): Readable {
    return this.stream('createRetainedStream', [pattern]);
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    return this.stream('createRetainedStreamCombi', [patterns]);
  }

  async addSubscriptions(client: SessionClient, subs: StoredSubscription[]): Promise<void> {
    await this.#subscriptions.addSubscriptions({ id: client.id }, subs);
    await this.call('addSubscriptions', [{ id: client.id }, subs.map(plain)]);
  }

  async removeSubscriptions(client: SessionClient, topics: string[]): Promise<void> {
    await this.#subscriptions.removeSubscriptions({ id: client.id }, topics);
    await this.call('removeSubscriptions', [{ id: client.id }, topics]);
  }

  async cleanSubscriptions(client: SessionClient): Promise<void> {
    await this.#subscriptions.cleanSubscriptions({ id: client.id });
    await this.call('cleanSubscriptions', [{ id: client.id }]);
  }

  subscriptionsByClient(client: SessionClient): Promise<StoredSubscription[]> {
    return this.#subscriptions.subscriptionsByClient({ id: client.id });
  }

  subscriptionsByTopic(topic: string): ReturnType<MemoryPersistence['subscriptionsByTopic']> {
    return this.#subscriptions.subscriptionsByTopic(topic);
  }

  countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return this.#subscriptions.countOffline();
  }

  async outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    await this.call('outgoingEnqueue', [{ clientId: sub.clientId }, plain(packet)]);
  }

  async outgoingEnqueueCombi(subs: ReadonlyArray<{ clientId: string }>, packet: StoredPacket): Promise<void> {
    const clients = subs.map((sub) => ({ clientId: sub.clientId }));
    await this.call('outgoingEnqueueCombi', [clients, plain(packet)]);
  }

  async outgoingUpdate(client: SessionClient, packet: StoredPacket): Promise<void> {
    await this.call('outgoingUpdate', [{ id: client.id }, plain(packet)]);
  }

  async outgoingClearMessageId(
    client: SessionClient,
    packet: { messageId?: number | undefined },
  ): Promise<StoredPacket | undefined> {
    const args = [{ id: client.id }, plain({ messageId: packet.messageId })];
    return asPacket((await this.call('outgoingClearMessageId', args)) ?? undefined) as
      StoredPacket | undefined;
  }

  outgoingStream(client: SessionClient): Readable {
    return this.stream('outgoingStream', [{ id: client.id }]);
  }

  async incomingStorePacket(client: SessionClient, packet: StoredPacket): Promise<void> {
    await this.call('incomingStorePacket', [{ id: client.id }, plain(packet)]);
  }

  async incomingGetPacket(client: SessionClient, packet: { messageId?: number }): Promise<StoredPacket> {
    const args = [{ id: client.id }, plain({ messageId: packet.messageId })];
    return asPacket((await this.call('incomingGetPacket', args)) as StoredPacket);
  }

  async incomingDelPacket(client: SessionClient, packet: { messageId?: number }): Promise<void> {
    await this.call('incomingDelPacket', [{ id: client.id }, plain({ messageId: packet.messageId })]);
  }

  async cleanIncoming(client: SessionClient): Promise<void> {
    await this.call('cleanIncoming', [{ id: client.id }]);
  }

  /** As `MqttSessions.putWill`, which marks the will with the broker's id and its client's. */
  async putWill(client: SessionClient, packet: StoredPacket): Promise<void> {
    packet.brokerId = this.broker?.id ?? '';
    packet.clientId = client.id;
    await this.call('putWill', [{ id: client.id }, plain(packet)]);
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
