import type { Aedes, Client } from 'aedes';
import type { SendOutcome } from './types.js';

interface Pending {
  readonly client: Client;
  readonly qos: 0 | 1;
  messageId: number | undefined;
  settle(outcome: SendOutcome): void;
}

/** The persistence calls of aedes this class listens to (aedes-persistence's interface). */
interface OutgoingPersistence {
  outgoingClearMessageId(client: Client, packet: { cmd?: string; messageId?: number }): Promise<unknown>;
}

/** Packet identifiers are 1–65535 [MQTT-2.3.1-1]. */
const MAX_PACKET_ID = 65_535;

/**
 * Messages sent to one client, followed until they are done: written to its socket (QoS 0) or
 * acknowledged by its PUBACK (QoS 1).
 *
 * aedes keeps no outgoing QoS 1 packet of a clean session, so its `ack` event cannot say which message a
 * PUBACK acknowledges. So the packet identifiers of every QoS 1 message forwarded to a client are chosen
 * here (in `authorizeForward`, where aedes lets a packet be changed before it is sent), and PUBACKs are read
 * where aedes hands them to its persistence (`outgoingClearMessageId`).
 */
export class Deliveries {
  // A message sent with `send`, known by its payload buffer (aedes copies packets, never the payload).
  private readonly byPayload = new WeakMap<object, Pending>();
  // The payload of a `publish` that one client is not to be sent, with that client's id.
  private readonly skip = new WeakMap<object, string>();
  private readonly perClient = new Map<Client, { pending: Set<Pending>; byId: Map<number, Pending> }>();
  private readonly nextIds = new WeakMap<Client, number>();

  install(aedes: Aedes): void {
    const inner = aedes.authorizeForward.bind(aedes);
    aedes.authorizeForward = (client, packet) => {
      if (this.skip.get(packet.payload as object) === client.id) return null;
      const forwarded = inner(client, packet);
      if (!forwarded) return forwarded;
      if (forwarded.qos > 0 && !forwarded.messageId) forwarded.messageId = this.nextId(client);
      const pending = this.byPayload.get(forwarded.payload as object);
      if (pending?.client === client && pending.qos === 1 && forwarded.messageId !== undefined) {
        pending.messageId = forwarded.messageId;
        this.perClient.get(client)?.byId.set(forwarded.messageId, pending);
      }
      return forwarded;
    };
    // aedes-persistence's interface, which aedes' typings leave out; every PUBACK passes through it.
    const persistence = (aedes as unknown as { persistence: OutgoingPersistence }).persistence;
    const clear = persistence.outgoingClearMessageId.bind(persistence);
    persistence.outgoingClearMessageId = (client, packet) => {
      if (packet.cmd === 'puback' && packet.messageId !== undefined)
        this.acknowledged(client, packet.messageId);
      return clear(client, packet);
    };
    aedes.on('clientDisconnect', (client) => this.closed(client));
  }

  /** Sends to `client` alone at `qos`; settles once it is written (QoS 0) or acknowledged (QoS 1). */
  send(client: Client, topic: string, payload: Buffer, qos: 0 | 1): Promise<SendOutcome> {
    if (client.closed) return Promise.resolve('not-connected');
    let state = this.perClient.get(client);
    if (state === undefined) {
      state = { pending: new Set(), byId: new Map() };
      this.perClient.set(client, state);
    }
    const { pending: all, byId } = state;
    return new Promise<SendOutcome>((resolve) => {
      const pending: Pending = {
        client,
        qos,
        messageId: undefined,
        settle: (outcome) => {
          if (!all.delete(pending)) return;
          if (pending.messageId !== undefined) byId.delete(pending.messageId);
          resolve(outcome);
        },
      };
      all.add(pending);
      this.byPayload.set(payload, pending);
      client.publish({ cmd: 'publish', topic, payload, qos, retain: false, dup: false }, () => {
        // aedes reports a failed write by closing the connection, not through this callback.
        if (client.closed) pending.settle('lost');
        else if (qos === 0) pending.settle('written');
      });
    });
  }

  /** Marks `payload`, about to be published, as not for client `clientId`. */
  skipFor(payload: Buffer, clientId: string): void {
    this.skip.set(payload, clientId);
  }

  private acknowledged(client: Client, messageId: number): void {
    this.perClient.get(client)?.byId.get(messageId)?.settle('acknowledged');
  }

  private closed(client: Client): void {
    const state = this.perClient.get(client);
    if (state === undefined) return;
    this.perClient.delete(client);
    for (const pending of [...state.pending]) pending.settle('lost');
  }

  // The next packet identifier for a client, past those of messages still waiting for their PUBACK.
  private nextId(client: Client): number {
    const inFlight = this.perClient.get(client)?.byId;
    let id = this.nextIds.get(client) ?? 1;
    for (let tries = 0; tries < MAX_PACKET_ID && inFlight?.has(id) === true; tries++) {
      id = id >= MAX_PACKET_ID ? 1 : id + 1;
    }
    this.nextIds.set(client, id >= MAX_PACKET_ID ? 1 : id + 1);
    return id;
  }
}
