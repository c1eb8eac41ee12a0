import { decode, encode } from 'cbor-x';
import type { DisconnectReason, PublishOptions, SendOutcome } from '../broker/index.js';
import type { Config } from '../config/index.js';
import type { GuardCounters, TlsMaterial } from '../broker/index.js';

/**
 * What crosses between the edge thread (the broker) and the decision thread, as records of a `Crossing`
 * (src/threads/crossing.ts): each a CBOR array whose first item says what it is. Many records of a turn of the
 * event loop cross as one message; nothing is structured-cloned per record.
 */

/** Edge → decision. */
export const ToDecision = {
  /**
   * A device event the edge decoded: `[tag, id, qos, actor, type, data, deviceAt, clientId, connection, messageId,
   * dup, hash, held]`; `held`: the publisher waits for `Recorded` (QoS 1, or QoS 0 while the decision thread is
   * congested).
   */
  Event: 1,
  /** `[tag, clientId, connectedCount]` */
  Connected: 2,
  /** `[tag, clientId, reason, connectedCount]` */
  Disconnected: 3,
  /** `[tag, clientId]`: the client was granted subscriptions. */
  Subscribed: 4,
  /** `[tag, requestId, deviceId, secret]`: a CONNECT's credentials, to check against the store. */
  Verify: 5,
  /** `[tag, requestId, outcome]`: what became of a `Send`. */
  Sent: 6,
  /** `[tag, reason]`: a publish the edge refused (counted by the decision thread's metrics). */
  Refused: 7,
  /** `[tag, counter, label]`: one of the guard's counters (`GuardCounters`), a name or a count as its label. */
  Guard: 8,
  /**
   * `[tag, requestId, method, args]`: a call of aedes on its persistence, for the decision thread's `MqttSessions`
   * (`EdgeSessions`); `requestId` null: no answer wanted.
   */
  Session: 9,
} as const;

/** Decision → edge. */
export const ToEdge = {
  /** `[tag, ids]`: the QoS 1 publishes whose records are synced: acknowledge them. */
  Recorded: 1,
  /** `[tag, ids]`: publishes that could not be recorded: close their connections so the devices resend. */
  Failed: 2,
  /** `[tag, requestId, clientId, topic, payload]`: a command for one device (`Broker.sendTo`). */
  Send: 3,
  /** `[tag, topic, payload, qos, retain, except]`: a publish as the gateway (`Broker.publish`). */
  Publish: 4,
  /** `[tag, requestId, verdict, error]`: the answer to a `Verify`. */
  Verified: 5,
  /** `[tag, deviceId]`: end the device's connection (its credential was revoked). */
  Disconnect: 6,
  /** `[tag, congested]`: while true, QoS 0 publishers wait too (for their record, and the queues to drain). */
  Congested: 7,
  /** `[tag, requestId, ok, value]`: the answer to a `Session` call: its result, or (not ok) its error's message. */
  SessionReply: 8,
  /** `[tag, clientId]`: the session expired; its subscriptions are gone. */
  SessionExpired: 9,
} as const;

export type EventRecord = [
  typeof ToDecision.Event,
  number,
  0 | 1 | 2,
  string,
  string,
  Record<string, unknown>,
  number | null,
  string,
  number,
  number | null,
  boolean,
  number | null,
  boolean,
];

export type EdgeRecord =
  | EventRecord
  | [typeof ToDecision.Connected, string, number]
  | [typeof ToDecision.Disconnected, string, DisconnectReason, number]
  | [typeof ToDecision.Subscribed, string]
  | [typeof ToDecision.Verify, number, string, Uint8Array]
  | [typeof ToDecision.Sent, number, SendOutcome]
  | [typeof ToDecision.Refused, string]
  | [typeof ToDecision.Guard, keyof GuardCounters, string | number | null]
  | [typeof ToDecision.Session, number | null, SessionMethod, unknown[]];

export type DecisionRecord =
  | [typeof ToEdge.Recorded, number[]]
  | [typeof ToEdge.Failed, number[]]
  | [typeof ToEdge.Send, number, string, string, Uint8Array | string]
  | [typeof ToEdge.Publish, string, Uint8Array | string, 0 | 1, boolean, string | null]
  | [typeof ToEdge.Verified, number, 'ok' | 'unknown-device' | 'wrong-secret' | null, string | null]
  | [typeof ToEdge.Disconnect, string]
  | [typeof ToEdge.Congested, boolean]
  | [typeof ToEdge.SessionReply, number, boolean, unknown]
  | [typeof ToEdge.SessionExpired, string];

/** The persistence calls the edge thread's aedes makes that the decision thread answers. */
export const SESSION_METHODS = [
  'setup',
  'sessionConnected',
  'sessionDisconnected',
  'storeRetained',
  'createRetainedStream',
  'createRetainedStreamCombi',
  'addSubscriptions',
  'removeSubscriptions',
  'cleanSubscriptions',
  'subscriptionsByClient',
  'outgoingEnqueue',
  'outgoingEnqueueCombi',
  'outgoingUpdate',
  'outgoingClearMessageId',
  'outgoingStream',
  'incomingStorePacket',
  'incomingGetPacket',
  'incomingDelPacket',
  'cleanIncoming',
  'putWill',
  'getWill',
  'delWill',
  'streamWill',
  'getClientList',
] as const;
export type SessionMethod = (typeof SESSION_METHODS)[number];

/**
 * A packet as it crossed, its payload copied out of the batch (which goes back to its sender once read) into a
 * `Buffer` of its own, as aedes and the store keep it.
 */
export function asPacket<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  const packet = value as { payload?: unknown };
  if (packet.payload instanceof Uint8Array) packet.payload = Buffer.from(packet.payload);
  return value;
}

export function encodeRecord(record: EdgeRecord | DecisionRecord): Uint8Array {
  return encode(record);
}

export function decodeRecord<T extends EdgeRecord | DecisionRecord>(
  batch: Uint8Array,
  start: number,
  end: number,
): T {
  return decode(batch.subarray(start, end)) as T;
}

/** What the edge thread is started with (`workerData`). */
export interface EdgeThreadData {
  config: Config;
  tls: TlsMaterial | undefined;
}

/** Control messages beside the crossing's batches (rare: start and stop). */
export type EdgeControl =
  | {
      kind: 'listening';
      address: { host: string; port: number };
      tls: { host: string; port: number } | undefined;
    }
  | { kind: 'failed'; message: string; code: string | undefined; hint: string | undefined }
  | { kind: 'stop' }
  | { kind: 'stopped' };

export type { PublishOptions };
