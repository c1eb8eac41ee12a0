// aedes-persistence's in-memory persistence (its async form, the one aedes 1.x calls). The package types
// only its main entry; this is the part of the class that MqttSessions extends and calls.
declare module 'aedes-persistence/asyncPersistence.js' {
  import type { Readable } from 'node:stream';

  /** A packet as aedes hands it to its persistence (aedes-packet's shape, or a PUBREL). */
  export interface StoredPacket {
    cmd: string;
    topic?: string | undefined;
    payload?: Buffer | string | undefined;
    qos?: number | undefined;
    retain?: boolean | undefined;
    dup?: boolean | undefined;
    messageId?: number | undefined;
    brokerId?: string | undefined;
    brokerCounter?: number | undefined;
    clientId?: string | undefined;
    [field: string]: unknown;
  }

  /** What of a client the persistence reads: its id. */
  export interface SessionClient {
    readonly id: string;
  }

  export interface StoredSubscription {
    topic: string;
    qos: number;
    rh?: number;
    rap?: boolean;
    nl?: boolean;
    [field: string]: unknown;
  }

  /** A subscription matched by topic: whose it is. */
  export interface SubscriptionMatch {
    clientId: string;
    topic: string;
    qos: number;
  }

  export default class MemoryPersistence {
    setup(broker: { id: string }): Promise<void>;
    storeRetained(packet: StoredPacket): Promise<void>;
    createRetainedStream(pattern: string): Readable;
    createRetainedStreamCombi(patterns: string[]): Readable;
    addSubscriptions(client: SessionClient, subs: StoredSubscription[]): Promise<void>;
    removeSubscriptions(client: SessionClient, topics: string[]): Promise<void>;
    subscriptionsByClient(client: SessionClient): Promise<StoredSubscription[]>;
    countOffline(): Promise<{ subsCount: number; clientsCount: number }>;
    subscriptionsByTopic(topic: string): Promise<SubscriptionMatch[]>;
    cleanSubscriptions(client: SessionClient): Promise<void>;
    incomingStorePacket(client: SessionClient, packet: StoredPacket): Promise<void>;
    incomingGetPacket(client: SessionClient, packet: { messageId?: number }): Promise<StoredPacket>;
    incomingDelPacket(client: SessionClient, packet: { messageId?: number }): Promise<void>;
    cleanIncoming(client: SessionClient): Promise<void>;
    getClientList(topic: string): Readable;
    destroy(): Promise<void>;
  }
}
