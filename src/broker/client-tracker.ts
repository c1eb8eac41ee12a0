import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Aedes, Client } from 'aedes';
import type { Logger } from 'pino';
import type { BrokerHooks, ClientInfo, DisconnectReason } from './types.js';

/**
 * Turns aedes' client events into the hooks: one `onConnected` and exactly one `onDisconnected` per
 * registered client, with the reason the connection ended, and every client error as a log line.
 */
export class ClientTracker {
  private readonly registered = new Map<Client, ClientInfo>();
  // The live client of each id, to tell a takeover [MQTT-3.1.4-2] from an ordinary close.
  private readonly byId = new Map<string, Client>();
  private readonly endReasons = new WeakMap<Client, DisconnectReason>();
  // Taken when the connection is accepted: once the socket is destroyed it no longer knows its peer.
  private readonly addresses = new WeakMap<object, string>();
  private steps = 0;

  constructor(
    private readonly hooks: BrokerHooks,
    private readonly logger: Logger,
  ) {}

  get connectedCount(): number {
    return this.registered.size;
  }

  /** Connections accepted and clients registered (CONNECT completed) so far. */
  get connectionSteps(): number {
    return this.steps;
  }

  accepted(socket: Socket): void {
    this.steps++;
    this.addresses.set(socket, peerAddress(socket));
  }

  /** The connected client with this id. */
  byClientId(id: string): Client | undefined {
    return this.byId.get(id);
  }

  info(client: Client): ClientInfo {
    return this.registered.get(client) ?? this.describe(client);
  }

  /** From aedes' authenticate, before it registers the client and closes an older one of the same id. */
  beforeRegister(client: Client): void {
    const previous = this.byId.get(client.id);
    if (previous !== undefined && previous !== client) this.markEnd(previous, 'kicked');
  }

  /** The broker is closing: every connection still up ends by the gateway's hand. */
  kickAll(): void {
    for (const client of this.registered.keys()) this.markEnd(client, 'kicked');
  }

  watch(aedes: Aedes): void {
    aedes.on('client', (client) => this.onRegistered(client));
    aedes.on('clientDisconnect', (client) => this.onUnregistered(client));
    // Emitted just before the 'keep alive timeout' client error, which would otherwise count as 'error'.
    aedes.on('keepaliveTimeout', (client) => this.markEnd(client, 'keepalive'));
    aedes.on('clientError', (client, err) => {
      this.markEnd(client, 'error');
      // The guard logs the connections it ends, with the reason, as it ends them.
      if ((err as { logged?: unknown }).logged === true) return;
      this.logger.warn({ err, clientId: client.id, address: this.addressOf(client) }, 'mqtt client error');
    });
    aedes.on('connectionError', (client, err) => {
      this.logger.warn(
        { err, address: this.addressOf(client) },
        'mqtt connection error before CONNECT completed',
      );
    });
    // aedes emits 'error' for failures of its persistence; its typings leave the event out.
    const emitter: EventEmitter = aedes;
    emitter.on('error', (err: unknown) => this.logger.error({ err }, 'mqtt broker error'));
  }

  private onRegistered(client: Client): void {
    this.steps++;
    const info = this.describe(client);
    this.registered.set(client, info);
    this.byId.set(client.id, client);
    this.logger.debug({ clientId: info.id, address: info.address }, 'mqtt client connected');
    try {
      this.hooks.onConnected(info);
    } catch (err) {
      this.logger.error({ err, clientId: info.id }, 'onConnected hook failed');
    }
  }

  private onUnregistered(client: Client): void {
    const info = this.registered.get(client);
    if (info === undefined) return;
    this.registered.delete(client);
    if (this.byId.get(client.id) === client) this.byId.delete(client.id);
    const reason = this.endReasons.get(client) ?? 'closed';
    this.logger.debug({ clientId: info.id, address: info.address, reason }, 'mqtt client disconnected');
    try {
      this.hooks.onDisconnected(info, reason);
    } catch (err) {
      this.logger.error({ err, clientId: info.id }, 'onDisconnected hook failed');
    }
  }

  private markEnd(client: Client, reason: DisconnectReason): void {
    if (!this.endReasons.has(client)) this.endReasons.set(client, reason);
  }

  private describe(client: Client): ClientInfo {
    // Every connection is a device's for now; the gateway's own publishes do not go through a client.
    return { id: client.id, address: this.addressOf(client), internal: false };
  }

  private addressOf(client: Client): string {
    return this.addresses.get(client.conn) ?? 'unknown';
  }
}

function peerAddress(socket: Socket): string {
  const host = socket.remoteAddress ?? 'unknown';
  return `${host.includes(':') ? `[${host}]` : host}:${socket.remotePort ?? 0}`;
}
