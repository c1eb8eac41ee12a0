import type { Logger } from 'pino';
import type { DeviceGuard } from './guard.js';
import type { TlsListenerOptions } from './tls.js';

/** An MQTT client of the embedded broker. */
export interface ClientInfo {
  id: string;
  /** `host:port` of the peer, as seen when it connected. */
  address: string;
  /** A connection the gateway itself opened, rather than a device. */
  internal: boolean;
}

/**
 * Why a connection ended: `closed` the client ended it (with or without DISCONNECT; a will is
 * published in the latter case), `error` a socket or protocol error (an oversized packet included),
 * `keepalive` nothing arrived within 1.5 keep-alive periods, `kicked` the gateway ended it (another
 * connection took over its client id, or the broker closed).
 */
export type DisconnectReason = 'closed' | 'error' | 'keepalive' | 'kicked';

/**
 * What of a PUBLISH packet tells a resend from a new publish. The broker hands `onPublish` one object rewritten for
 * each publish: read it during the call, do not keep it.
 */
export interface PublishPacketInfo {
  /** The DUP flag: the client says it may have sent this packet before [MQTT-3.3.1-1]. */
  dup: boolean;
  /** Packet identifier; absent at QoS 0. */
  messageId: number | undefined;
  /** Which connection of the client it came on: a number the broker gives each connection, new after a reconnect. */
  connection: number;
}

export interface BrokerHooks {
  /**
   * Runs inside aedes' authorizePublish, before the PUBACK: resolve to acknowledge. Rejecting (or
   * throwing) closes the client's connection without acknowledging, so that a QoS 1 publish is resent.
   * While the returned promise is pending, aedes reads nothing more from that client (back-pressure).
   */
  onPublish(
    client: ClientInfo,
    topic: string,
    payload: Buffer,
    qos: 0 | 1 | 2,
    packet: PublishPacketInfo,
  ): Promise<void> | void;
  onConnected(client: ClientInfo): void;
  onDisconnected(client: ClientInfo, reason: DisconnectReason): void;
  /** The client was granted these topic filters (a SUBSCRIBE, after its SUBACK). */
  onSubscribed?(client: ClientInfo, filters: readonly string[]): void;
}

/**
 * Where the broker keeps sessions and retained messages: an aedes persistence (aedes-persistence's interface), told
 * when clients come and go, so that the session of a client that stays away can expire.
 */
export interface SessionPersistence {
  setup(broker: { id: string }): Promise<void>;
  /** A client completed CONNECT; `clean` false: it has a persistent session. */
  sessionConnected(clientId: string, clean: boolean): void;
  sessionDisconnected(clientId: string, clean: boolean): void;
  /**
   * Whether a subscription it keeps could match `topic` (true when unsure). False lets a QoS 1 publish that no
   * client subscribes to be acknowledged without aedes asking for the sessions subscribed to its topic; without
   * this method every QoS 1 publish is routed.
   */
  holdsSubscriptionMatching?(topic: string): boolean;
}

export interface BrokerOptions {
  host: string;
  /** 0 picks a free port; `Broker.address` tells which. */
  port: number;
  /** Largest MQTT packet accepted, header included; a bigger one closes that client's connection. */
  maxPacketBytes: number;
  logger: Logger;
  hooks: BrokerHooks;
  /** Authentication, per-device topics and limits for connections from outside; none: a plain broker. */
  guard?: DeviceGuard | undefined;
  /** A TLS listener beside the TCP one, served the same way. */
  tls?: TlsListenerOptions | undefined;
  /** Durable sessions and retained messages; none: aedes keeps them in memory, until the broker stops. */
  sessions?: SessionPersistence | undefined;
}

export interface PublishOptions {
  qos?: 0 | 1;
  retain?: boolean;
  /** A client id this publish is not delivered to (it is sent its copy with `sendTo`). */
  except?: string;
}

/**
 * What became of a message sent to one client with `Broker.sendTo`: `acknowledged` its PUBACK came (QoS 1),
 * `written` it was written to the client's socket (QoS 0), `not-connected` no client has that id,
 * `not-subscribed` the client holds no subscription that matches the topic, `lost` the connection ended first.
 */
export type SendOutcome = 'acknowledged' | 'written' | 'not-connected' | 'not-subscribed' | 'lost';

export interface Broker {
  /** Where the broker listens: the port actually bound. */
  readonly address: { host: string; port: number };
  /** Where the TLS listener listens, when there is one. */
  readonly tlsAddress: { host: string; port: number } | undefined;
  /** Publishes as the gateway itself (commands, dead letters); never passes through `onPublish`. */
  publish(topic: string, payload: Buffer | string, opts?: PublishOptions): Promise<void>;
  /**
   * Sends to the connected client `clientId` alone, at the QoS it subscribed to `topic` with (at most 1);
   * settles once that client took it or could not (see SendOutcome). Never rejects.
   */
  sendTo(clientId: string, topic: string, payload: Buffer | string): Promise<SendOutcome>;
  readonly connectedCount: number;
  /**
   * Client publishes acknowledged and delivered to no one without going through aedes' router, as none could match
   * them; not known here when the broker runs on another thread.
   */
  readonly unroutedPublishes?: number;
  /**
   * Connections accepted and CONNECTs completed since the broker started: it moves while devices are coming in, and
   * long work on the broker's thread gives them the loop meanwhile (see `yieldToIo`). Not known here when the broker
   * runs on another thread (whose loop long work does not hold).
   */
  readonly connectionSteps?: number;
  /** Receives what is published on `pattern`, in process, without a client connection (the dashboard, tests). */
  subscribe(pattern: string, onMessage: (topic: string, payload: Buffer) => void): Promise<void>;
  /** Stops accepting, closes every client connection, then aedes. Idempotent. */
  close(): Promise<void>;
}
