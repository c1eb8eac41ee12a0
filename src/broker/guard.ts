import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Aedes, Client, PublishPacket } from 'aedes';
import type { Logger } from 'pino';
import { DROPPED_TOPIC } from '../shared/index.js';
import { checkPublish, checkSubscribe, type Identity, type TopicLimits, type TopicRefusal } from './acl.js';
import { authenticateConnect, type AuthRefusal, type CredentialCheck } from './auth.js';
import {
  ConnectThrottle,
  DEFAULT_CONNECT_THROTTLE,
  type ConnectThrottleOptions,
} from './connect-throttle.js';
import {
  ConnectionAdmission,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_PENDING_PER_ADDRESS,
} from './admission.js';
import { MalformedPacketError, PacketTooLargeError } from './errors.js';
import { OccasionalLog, type LimitName } from './limits.js';
import { PublishThrottle, type PublishRate } from './rate-limit.js';
import { ConnectRefusedError, MalformedTopicError, PublishRateError } from './security-errors.js';

/** What the guard counts; the gateway points these at its metrics. */
export interface GuardCounters {
  authRefused(reason: AuthRefusal | 'tls-handshake' | 'certificate-revoked'): void;
  aclRefused(action: 'publish' | 'subscribe'): void;
  limitHit(limit: LimitName): void;
  /** A connection closed for a malformed packet or a protocol violation. */
  protocolError(): void;
  /** Connections open on the listeners (CONNECT done or not). */
  openConnections(count: number): void;
  /** Connections open on the listeners that have not completed CONNECT. */
  pendingConnections(count: number): void;
}

export interface GuardOptions {
  /** Clients without credentials are let in (development); every other rule still applies to them. */
  allowAnonymous: boolean;
  credentials: CredentialCheck;
  /** Connections open at once on the listeners, at most; one more is closed as soon as it is accepted. */
  maxConnections: number;
  /** Connections from one IP address that have not completed CONNECT, at most; default 1,000. */
  maxPendingPerAddress?: number | undefined;
  /** A connection that has not completed CONNECT this long after it was accepted is closed; default 30 s. */
  connectTimeoutMs?: number | undefined;
  topics: TopicLimits;
  /** Subscriptions one connection may hold; default 100. */
  maxSubscriptions?: number | undefined;
  publishRate: PublishRate;
  logger: Logger;
  counters?: Partial<GuardCounters> | undefined;
  /** Monotonic ms; default `performance.now`. */
  now?: () => number;
  connectThrottle?: ConnectThrottleOptions;
}

/** How a connection came in, noted when the listener accepted it. */
interface Peer {
  /** The peer's IP address: repeated failures are counted per address, whatever the port. */
  host: string;
  /** `host:port`, for the log. */
  address: string;
  certificateRequired: boolean;
  certificateName: string | undefined;
}

interface Session {
  identity: Identity;
  peer: Peer;
  throttle: PublishThrottle;
  /** Refusals of this connection, logged at most once per kind every 10 s. */
  logged: OccasionalLog;
  /** The filters it holds, at most `maxSubscriptions`. */
  subscriptions: Set<string>;
}

/**
 * Default of the subscriptions one connection may hold: a device needs one or two, and each takes
 * memory in the broker's topic tree for as long as the connection lasts.
 */
const DEFAULT_MAX_SUBSCRIPTIONS = 100;

type AuthenticateHandler = Aedes['authenticate'];
type PublishHandler = Aedes['authorizePublish'];
type SubscribeHandler = Aedes['authorizeSubscribe'];

/**
 * The broker's policy towards connections from outside: authentication, per-device topics, limits.
 * It wraps aedes' hooks and applies only to connections its listeners accepted (`admit`, `secured`);
 * a client the gateway connects in process keeps whatever rights the wrapped hooks give it.
 *
 * A refused publish is acknowledged and dropped, never answered by closing the connection: a device
 * that is closed on reconnects and sends the same publish again (a QoS 1 one is resent until it is
 * acknowledged), so closing would turn one misconfigured device into a reconnect storm. Only a device
 * that keeps flooding past its rate, or a protocol violation, ends the connection.
 */
export class DeviceGuard {
  private readonly peers = new WeakMap<object, Peer>();
  private readonly sessions = new WeakMap<Client, Session>();
  private readonly byDevice = new Map<string, Client>();
  private readonly failures: ConnectThrottle;
  private readonly admission: ConnectionAdmission;
  private readonly now: () => number;
  /** Applied by the guard from `admit` on; the broker gives aedes' own CONNECT timer a little longer. */
  readonly connectTimeoutMs: number;

  constructor(private readonly opts: GuardOptions) {
    this.failures = new ConnectThrottle(opts.connectThrottle ?? DEFAULT_CONNECT_THROTTLE);
    this.now = opts.now ?? (() => performance.now());
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.admission = new ConnectionAdmission({
      maxConnections: opts.maxConnections,
      maxPendingPerAddress: opts.maxPendingPerAddress ?? DEFAULT_MAX_PENDING_PER_ADDRESS,
      connectTimeoutMs: this.connectTimeoutMs,
      logger: opts.logger,
      counters: {
        limitHit: opts.counters?.limitHit,
        openConnections: opts.counters?.openConnections,
        pendingConnections: opts.counters?.pendingConnections,
      },
      now: this.now,
    });
  }

  /** Connections open on the listeners that have not completed CONNECT. */
  get pendingConnections(): number {
    return this.admission.pendingConnections;
  }

  /**
   * A listener accepted `socket`: admits it under the connection limits (false: refused, and destroyed)
   * and notes it as a connection from outside.
   */
  admit(socket: Socket): boolean {
    if (!this.admission.admit(socket, socket.remoteAddress ?? 'unknown')) return false;
    this.peers.set(socket, peerOf(socket, false, undefined));
    return true;
  }

  /**
   * A TLS connection over the admitted socket `raw` completed its handshake; with a CA, its certificate
   * was verified.
   */
  secured(
    socket: Socket,
    certificate: { required: boolean; commonName: string | undefined },
    raw: Socket,
  ): void {
    this.admission.wraps(socket, raw);
    this.peers.set(socket, peerOf(socket, certificate.required, certificate.commonName));
  }

  /** A TLS handshake failed: counted, and logged with the peer. */
  handshakeFailed(err: Error, socket: Socket): void {
    const code = (err as { code?: unknown }).code;
    // The connection ended before the handshake did: the peer went away, or the guard closed it (over a
    // limit, or out of time: counted and logged as that). A flood of these must not be a line each.
    if (code === 'ECONNRESET') {
      this.opts.logger.debug(
        { address: addressOf(socket) },
        'mqtt TLS connection ended during the handshake',
      );
      return;
    }
    // No client certificate, or one the CA did not sign, as opposed to TLS that went wrong otherwise.
    const reason =
      /CERTIFICATE|CERT_/.test(String(code)) || /certificate/i.test(err.message)
        ? 'certificate'
        : 'tls-handshake';
    this.opts.counters?.authRefused?.(reason);
    this.opts.logger.warn(
      { reason, code, detail: err.message.trim(), address: addressOf(socket) },
      'mqtt TLS handshake refused',
    );
  }

  /** A TLS client's certificate is missing, not signed by the CA, or revoked: counted, and logged with the peer. */
  certificateRefused(socket: Socket, reason: string): void {
    this.opts.counters?.authRefused?.(reason === 'CERT_REVOKED' ? 'certificate-revoked' : 'certificate');
    this.opts.logger.warn({ reason, address: addressOf(socket) }, 'mqtt TLS client certificate refused');
  }

  /** Ends the connection of `deviceId`, if it has one (its credential was removed). */
  disconnect(deviceId: string): boolean {
    const client = this.byDevice.get(deviceId);
    if (client === undefined) return false;
    this.byDevice.delete(deviceId);
    client.close();
    return true;
  }

  /**
   * Puts the guard in front of the broker's authenticate, authorizePublish and authorizeSubscribe
   * (aedes calls them through these properties), counts the connections aedes closes for protocol
   * errors, and forgets clients that left.
   */
  install(aedes: Aedes): void {
    aedes.authenticate = this.authenticate(aedes.authenticate);
    aedes.authorizePublish = this.authorizePublish(aedes.authorizePublish);
    aedes.authorizeSubscribe = this.authorizeSubscribe(aedes.authorizeSubscribe);
    const onError = (_client: Client, err: Error): void => this.countError(err);
    aedes.on('clientError', onError);
    aedes.on('connectionError', onError);
    aedes.on('unsubscribe', (filters, client) => {
      const held = this.sessions.get(client)?.subscriptions;
      for (const filter of filters) held?.delete(filter);
    });
    aedes.on('clientDisconnect', (client) => {
      const session = this.sessions.get(client);
      if (session?.identity.kind !== 'device') return;
      if (this.byDevice.get(session.identity.deviceId) === client)
        this.byDevice.delete(session.identity.deviceId);
    });
  }

  private authenticate(inner: AuthenticateHandler): AuthenticateHandler {
    return (client, username, password, done) => {
      const peer = this.peers.get(client.conn);
      const passOn = (): void => inner(client, username, password, done);
      if (peer === undefined) return passOn();
      const delayMs = this.failures.delayFor(peer.host, this.now());
      const decide = async () => {
        if (delayMs > 0) await sleep(delayMs);
        return authenticateConnect(
          {
            clientId: client.id,
            username,
            password,
            certificateName: peer.certificateName,
            certificateRequired: peer.certificateRequired,
          },
          { allowAnonymous: this.opts.allowAnonymous, credentials: this.opts.credentials },
        );
      };
      decide().then(
        (result) => {
          if (!result.ok) {
            this.failures.failed(peer.host, this.now());
            this.opts.counters?.authRefused?.(result.refusal);
            const refused = new ConnectRefusedError(result.refusal, result.returnCode);
            this.opts.logger.warn(
              {
                code: refused.code,
                reason: result.refusal,
                detail: result.detail,
                clientId: client.id,
                username,
                address: peer.address,
                ...(delayMs > 0 ? { delayedMs: delayMs } : {}),
              },
              'mqtt connect refused',
            );
            return done(refused, false);
          }
          this.failures.succeeded(peer.host);
          this.admission.established(client.conn);
          this.sessions.set(client, {
            identity: result.identity,
            peer,
            throttle: new PublishThrottle(this.opts.publishRate, this.now()),
            logged: new OccasionalLog(this.opts.logger),
            subscriptions: new Set(),
          });
          if (result.identity.kind === 'device') this.byDevice.set(result.identity.deviceId, client);
          passOn();
        },
        (err: unknown) => {
          this.opts.logger.error(
            { err, clientId: client.id, address: peer.address },
            'mqtt authentication failed',
          );
          done(new ConnectRefusedError('unavailable', 3), false);
        },
      );
    };
  }

  private authorizePublish(inner: PublishHandler): PublishHandler {
    return (client, packet, done) => {
      const session = client === null ? undefined : this.sessions.get(client);
      if (session === undefined) return inner(client, packet, done);
      const nowMs = this.now();
      // The rate first: it bounds what a flooding device costs, refused publishes included.
      const rate = session.throttle.take(nowMs);
      if (rate === 'disconnect') {
        this.opts.counters?.limitHit?.('rate-disconnect');
        const { perSecond, disconnectAfterMs } = this.opts.publishRate;
        const over = new PublishRateError(perSecond, disconnectAfterMs);
        this.opts.logger.warn(
          { code: over.code, clientId: client?.id, address: session.peer.address, perSecond },
          'mqtt client disconnected: it kept publishing over its rate',
        );
        return done(over);
      }
      if (rate === 'drop') {
        this.opts.counters?.limitHit?.('publish-rate');
        this.note(
          session,
          client,
          'publish-rate',
          nowMs,
          { topic: packet.topic },
          'mqtt publish dropped: over the rate',
        );
        return drop(packet, done);
      }
      const verdict = checkPublish(session.identity, packet.topic, this.opts.topics);
      // Retained as MQTT 3.1.1 has it, on any topic the client may publish to; the session store bounds how many
      // each device and all of them keep.
      if (verdict.ok) return inner(client, packet, done);
      return this.refuse(
        session,
        client,
        'publish',
        verdict.refusal,
        verdict.reason,
        packet.topic,
        nowMs,
        () => {
          drop(packet, done);
        },
        done,
      );
    };
  }

  private authorizeSubscribe(inner: SubscribeHandler): SubscribeHandler {
    return (client, sub, done) => {
      const session = this.sessions.get(client);
      if (session === undefined) return inner(client, sub, done);
      const verdict = checkSubscribe(session.identity, sub.topic, this.opts.topics);
      if (verdict.ok) {
        const held = session.subscriptions;
        if (held.has(sub.topic) || held.size < (this.opts.maxSubscriptions ?? DEFAULT_MAX_SUBSCRIPTIONS)) {
          held.add(sub.topic);
          return inner(client, sub, done);
        }
        this.opts.counters?.limitHit?.('subscriptions');
        this.note(
          session,
          client,
          'subscriptions',
          this.now(),
          { topic: sub.topic, max: this.opts.maxSubscriptions ?? DEFAULT_MAX_SUBSCRIPTIONS },
          'mqtt subscribe refused: too many subscriptions',
        );
        return done(null, null);
      }
      // [MQTT-3.9.3] a refused filter gets 0x80 in the SUBACK; the connection stays.
      return this.refuse(
        session,
        client,
        'subscribe',
        verdict.refusal,
        verdict.reason,
        sub.topic,
        this.now(),
        () => {
          done(null, null);
        },
        (err) => done(err),
      );
    };
  }

  private refuse(
    session: Session,
    client: Client | null,
    action: 'publish' | 'subscribe',
    refusal: TopicRefusal,
    reason: string,
    topic: string,
    nowMs: number,
    dropIt: () => void,
    close: (err: Error) => void,
  ): void {
    if (refusal === 'malformed') {
      this.opts.counters?.protocolError?.();
      const malformed = new MalformedTopicError(reason);
      this.opts.logger.warn(
        { code: malformed.code, clientId: client?.id, address: session.peer.address, reason, action },
        'mqtt connection closed: malformed topic',
      );
      return close(malformed);
    }
    if (refusal === 'acl') this.opts.counters?.aclRefused?.(action);
    else this.opts.counters?.limitHit?.(refusal);
    this.note(
      session,
      client,
      `${action}:${refusal}`,
      nowMs,
      { topic, reason, action },
      `mqtt ${action} refused`,
    );
    dropIt();
  }

  /** Logs a refusal, at most once per 10 s per kind and connection, with how many were not logged. */
  private note(
    session: Session,
    client: Client | null,
    kind: string,
    nowMs: number,
    fields: Record<string, unknown>,
    message: string,
  ): void {
    session.logged.warn(
      kind,
      nowMs,
      { clientId: client?.id, address: session.peer.address, ...fields },
      message,
    );
  }

  private countError(err: Error): void {
    if ((err as { logged?: unknown }).logged === true) return;
    if (err instanceof PacketTooLargeError) return this.opts.counters?.limitHit?.('packet-size');
    if (err instanceof MalformedPacketError) return this.opts.counters?.protocolError?.();
    // Socket failures (ECONNRESET, EPIPE) and timeouts are the network's doing, not the client's.
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('E')) return;
    if (/keep ?alive|did not arrive in time|connection closed|drain timeout/i.test(err.message)) return;
    this.opts.counters?.protocolError?.();
  }
}

/**
 * Acknowledges a publish and delivers it to no one: aedes has no "drop" answer for authorizePublish
 * (an error closes the connection), so the packet is sent where no subscription can be, unretained;
 * with no filter there, the broker acknowledges it without routing it (routes.ts).
 */
function drop(packet: PublishPacket, done: (err?: Error | null) => void): void {
  packet.topic = DROPPED_TOPIC;
  packet.retain = false;
  packet.payload = Buffer.alloc(0);
  done(null);
}

function peerOf(socket: Socket, certificateRequired: boolean, certificateName: string | undefined): Peer {
  return {
    host: socket.remoteAddress ?? 'unknown',
    address: addressOf(socket),
    certificateRequired,
    certificateName,
  };
}

function addressOf(socket: Socket): string {
  const host = socket.remoteAddress ?? 'unknown';
  return `${host.includes(':') ? `[${host}]` : host}:${socket.remotePort ?? 0}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
