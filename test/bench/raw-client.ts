import { connect as tcpConnect, type Socket } from 'node:net';
import {
  connectPacket,
  PACKET_CONNACK,
  PACKET_PUBACK,
  PACKET_PUBLISH,
  PACKET_SUBACK,
  PacketReader,
  parsePublish,
  pubackPacket,
  subscribePacket,
} from './mqtt-wire.js';

export interface RawClientHooks {
  /** A PUBLISH arrived (already acknowledged when QoS 1). */
  onPublish?: (topic: string, payload: Buffer) => void;
  onPuback?: () => void;
}

const CONNECT_TIMEOUT_MS = 20_000;
/** Devices keep the keep-alive real gateways see; `PINGREQ`s go out from the fleet's one interval. */
export const KEEPALIVE_S = 60;
const PINGREQ = Buffer.from([0xc0, 0]);

/** One MQTT connection, by hand: CONNECT, SUBSCRIBE, whole packets written as given, packets read back. */
export class RawClient {
  private readonly reader: PacketReader;
  private waiting: { type: number; resolve: () => void } | undefined;
  closed = false;

  private constructor(
    readonly socket: Socket,
    private readonly hooks: RawClientHooks,
  ) {
    this.reader = new PacketReader((type, flags, body) => this.onPacket(type, flags, body));
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    socket.on('close', () => {
      this.closed = true;
    });
  }

  /**
   * Connects (with the client id as user name and `password`, when given) and subscribes to `filter` (when
   * given), resolving once the broker acknowledged both. From `localAddress` when given: any address of
   * 127.0.0.0/8 is the loopback interface on Linux, so one process can stand for devices of many addresses.
   */
  static async open(
    host: string,
    port: number,
    clientId: string,
    filter: string | undefined,
    hooks: RawClientHooks,
    password?: string,
    localAddress?: string,
  ): Promise<RawClient> {
    const socket = tcpConnect({ host, port, noDelay: true, ...(localAddress ? { localAddress } : {}) });
    const client = new RawClient(socket, hooks);
    // What the client waits for when it fails: the TCP handshake, the CONNACK or the SUBACK.
    let waitingFor = 'TCP connect';
    socket.once('connect', () => (waitingFor = 'CONNACK'));
    const failed = new Promise<never>((_resolve, reject) => {
      socket.once('error', (err) => reject(new Error(`${err.message} (waiting for the ${waitingFor})`)));
      socket.once('close', () =>
        reject(new Error(`${clientId}: connection closed (waiting for the ${waitingFor})`)),
      );
    });
    const timeout = setTimeout(
      () => socket.destroy(new Error(`${clientId}: no ${waitingFor} in time`)),
      CONNECT_TIMEOUT_MS,
    );
    try {
      // The user name is the client id, as the gateway's authentication wants it.
      const credentials = password !== undefined ? { username: clientId, password } : undefined;
      socket.write(connectPacket(clientId, KEEPALIVE_S, credentials));
      await Promise.race([client.next(PACKET_CONNACK), failed]);
      if (filter !== undefined) {
        waitingFor = 'SUBACK';
        socket.write(subscribePacket(1, filter, 0));
        await Promise.race([client.next(PACKET_SUBACK), failed]);
      }
    } finally {
      clearTimeout(timeout);
    }
    socket.removeAllListeners('error');
    // From here on a connection error is the broker closing it: the run counts what did not come back.
    socket.on('error', () => undefined);
    failed.catch(() => undefined);
    return client;
  }

  write(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes);
  }

  ping(): void {
    this.write(PINGREQ);
  }

  /** Bytes queued in the socket that the broker has not read yet. */
  get backlog(): number {
    return this.socket.writableLength;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      // DISCONNECT, then close: the broker sees a clean end, with no will [MQTT-3.14.4-3].
      this.socket.end(Buffer.from([0xe0, 0]));
      setTimeout(() => this.socket.destroy(), 2_000).unref();
    });
  }

  private next(type: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiting = { type, resolve };
    });
  }

  private onPacket(type: number, flags: number, body: Buffer): void {
    if (type === PACKET_PUBLISH) {
      const { topic, packetId, payload } = parsePublish(flags, body);
      if (packetId !== 0) this.socket.write(pubackPacket(packetId));
      this.hooks.onPublish?.(topic, payload);
      return;
    }
    if (type === PACKET_PUBACK) {
      this.hooks.onPuback?.();
      return;
    }
    if (this.waiting?.type === type) {
      // [MQTT-3.2.2.3] a CONNACK return code other than 0, [MQTT-3.9.3] a SUBACK of 0x80: refused.
      const refused = type === PACKET_CONNACK ? body[1] !== 0 : type === PACKET_SUBACK && body[2] === 0x80;
      if (refused) {
        const what = type === PACKET_CONNACK ? `CONNECT (return code ${body[1]})` : 'SUBSCRIBE';
        this.socket.destroy(new Error(`the broker refused the ${what}`));
        return;
      }
      const { resolve } = this.waiting;
      this.waiting = undefined;
      resolve();
    }
  }
}
