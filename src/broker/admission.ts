import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { OccasionalLog, type LimitName } from './limits.js';
import { PendingConnections } from './pending-connections.js';

export interface AdmissionOptions {
  /** Connections open at once on the listeners, CONNECT done or not. */
  maxConnections: number;
  /** Connections from one IP address that have not completed CONNECT, at most. */
  maxPendingPerAddress: number;
  /** A connection that has not completed CONNECT this long after it was accepted is closed. */
  connectTimeoutMs: number;
  logger: Logger;
  counters: {
    limitHit?: ((limit: LimitName) => void) | undefined;
    openConnections?: ((count: number) => void) | undefined;
    pendingConnections?: ((count: number) => void) | undefined;
  };
  now: () => number;
}

/**
 * Defaults. 30 s to complete CONNECT: most MQTT clients (mqtt.js, Paho) give up on a CONNACK after 30 s
 * themselves, and it leaves room for a whole site reconnecting at once after a power cut — 10,000
 * credential checks take under a second, 10,000 TLS handshakes (1–1.5 ms of the gateway's CPU each on
 * the 2-core development machine) 10–15 s, and a throttled address waits up to 10 s for its answer.
 * 1,000 pending per address: a site behind NAT with hundreds of devices on one address still gets all
 * of them in at once.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_PENDING_PER_ADDRESS = 1_000;

interface Connection {
  address: string;
  /** What the listener accepted (for TLS, the raw socket under the TLS one): destroying it ends the connection. */
  socket: Socket;
  pending: boolean;
  released: boolean;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Which connections the listeners keep. Established connections (CONNECT completed) are counted against
 * `maxConnections` and never pushed out. Pending ones (CONNECT not completed: a TLS handshake, a slow or
 * silent client) are capped per source address and closed after `connectTimeoutMs`; and when the
 * listeners are full, a newcomer takes the place of the oldest pending connection of the address that
 * holds the most (when that address holds at least two more than the newcomer's). So one address holding
 * half-open sockets loses its own first: it cannot keep devices from other addresses out.
 */
export class ConnectionAdmission {
  private readonly connections = new WeakMap<object, Connection>();
  private readonly pending = new PendingConnections<Connection>();
  private readonly log: OccasionalLog;
  private open = 0;

  constructor(private readonly opts: AdmissionOptions) {
    this.log = new OccasionalLog(opts.logger);
  }

  get openConnections(): number {
    return this.open;
  }

  get pendingConnections(): number {
    return this.pending.size;
  }

  /** A listener accepted `socket`: true when it is kept; false when it was refused and destroyed. */
  admit(socket: Socket, address: string): boolean {
    const refusal = this.refusalOf(address);
    if (refusal !== undefined) {
      this.refused(refusal, socket, address);
      socket.destroy();
      return false;
    }
    const connection: Connection = { address, socket, pending: true, released: false, timer: undefined };
    this.connections.set(socket, connection);
    this.open++;
    this.pending.add(address, connection);
    connection.timer = setTimeout(() => this.timedOut(connection), this.opts.connectTimeoutMs);
    connection.timer.unref();
    socket.once('close', () => this.release(connection));
    this.changed();
    return true;
  }

  /** `socket` is the TLS connection over the admitted raw socket `under`. */
  wraps(socket: Socket, under: Socket): void {
    const connection = this.connections.get(under);
    if (connection !== undefined) this.connections.set(socket, connection);
  }

  /** CONNECT completed on `socket`: it is no longer pending. */
  established(socket: object): void {
    const connection = this.connections.get(socket);
    if (connection === undefined || !connection.pending) return;
    this.settle(connection);
    this.changed();
  }

  private refusalOf(address: string): LimitName | undefined {
    const mine = this.pending.count(address);
    if (mine >= this.opts.maxPendingPerAddress) return 'pending-per-address';
    if (this.open < this.opts.maxConnections) return undefined;
    const heaviest = this.pending.heaviest();
    // Taking a place from an address that holds one more than this one would only swap the two.
    if (heaviest === undefined || heaviest.count <= mine + 1) return 'max-connections';
    this.opts.counters.limitHit?.('pending-shed');
    this.log.warn(
      'pending-shed',
      this.opts.now(),
      {
        address: heaviest.address,
        pendingFromAddress: heaviest.count,
        maxConnections: this.opts.maxConnections,
        forAddress: address,
      },
      'mqtt connection closed before CONNECT to make room: the gateway is full and this address holds the most connections without CONNECT',
    );
    this.release(heaviest.oldest);
    heaviest.oldest.socket.destroy();
    return undefined;
  }

  private refused(limit: LimitName, socket: Socket, address: string): void {
    this.opts.counters.limitHit?.(limit);
    const fields = { address: `${address}:${socket.remotePort ?? 0}` };
    if (limit === 'pending-per-address') {
      this.log.warn(
        limit,
        this.opts.now(),
        { ...fields, maxPendingPerAddress: this.opts.maxPendingPerAddress },
        'mqtt connection refused: too many connections without CONNECT from this address',
      );
    } else {
      this.log.warn(
        limit,
        this.opts.now(),
        { ...fields, maxConnections: this.opts.maxConnections },
        'mqtt connection refused: the gateway is at its maximum number of connections',
      );
    }
  }

  private timedOut(connection: Connection): void {
    if (!connection.pending || connection.released) return;
    this.opts.counters.limitHit?.('connect-timeout');
    this.log.warn(
      'connect-timeout',
      this.opts.now(),
      {
        address: connection.address,
        connectTimeoutMs: this.opts.connectTimeoutMs,
        pendingFromAddress: this.pending.count(connection.address),
      },
      'mqtt connection closed: CONNECT did not complete in time',
    );
    this.release(connection);
    connection.socket.destroy();
  }

  private settle(connection: Connection): void {
    connection.pending = false;
    clearTimeout(connection.timer);
    this.pending.delete(connection.address, connection);
  }

  /** Frees the connection's place at once (a destroyed socket reports 'close' only later); idempotent. */
  private release(connection: Connection): void {
    if (connection.released) return;
    connection.released = true;
    if (connection.pending) this.settle(connection);
    this.open--;
    this.changed();
  }

  private changed(): void {
    this.opts.counters.openConnections?.(this.open);
    this.opts.counters.pendingConnections?.(this.pending.size);
  }
}
