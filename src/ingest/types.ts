import type { EventSource, Profile } from '../shared/index.js';
import type { CloudEventLimit } from './cloud-event-limits.js';
import type { DecodeFailureReason } from './decode-payload.js';

/**
 * Why ingest refused an input: a payload that does not decode, a topic outside the scheme, a cloud event of the
 * wrong shape or over the cloud event rate.
 */
export type RejectReason = DecodeFailureReason | 'topic' | 'invalid' | 'rate';

/** The MQTT client a device publish came from (the broker's client info fits). */
export interface PublishingClient {
  readonly id: string;
  readonly address: string;
}

/** What the profile cache knows without going to disk. */
export type ProfilePeek = { hit: true; profile: Profile | undefined } | { hit: false };

/** Profiles as ingest reads them: a synchronous cache look-up, and a read that may go to disk. */
export interface ProfileSource {
  peek(deviceId: string): ProfilePeek;
  get(deviceId: string): Promise<Profile | undefined>;
  /** As `get`, for an input that can wait a few milliseconds to share its read with others (a connection). */
  getSoon?(deviceId: string): Promise<Profile | undefined>;
}

/** A refused input, as published to the dead-letter topic. */
export interface DeadLetter {
  reason: RejectReason;
  detail: string;
  topic: string;
  /** The publishing MQTT client; absent for events that came from the cloud. */
  clientId?: string;
  deviceId?: string;
  /** Gateway arrival time, ms. */
  at: number;
  /** The first KiB of the payload, base64; absent when the payload was empty. */
  payloadBase64?: string;
}

/** The client, connection and packet a QoS 1 publish came with, and the hash of its topic and payload. */
export interface PublishSource {
  clientId: string;
  connection: number;
  messageId: number;
  hash: number;
}

/** How a device event arrived, handed on to `deliver` with it. */
export interface PublishMeta {
  qos: 0 | 1 | 2;
  /** Present for QoS 1 and 2: what a resend of this publish would be recognised by. */
  source?: PublishSource;
  /**
   * Its publisher waits for its record only while the gateway is congested (a QoS 0 device publish, see the
   * device edge's `heldBack`): the promise of the record is then made only when that is so.
   */
  waitsOnlyIfCongested?: boolean;
}

/** Counters ingest reports to. */
export interface IngestMetrics {
  accepted(type: string, source: EventSource): void;
  rejected(reason: RejectReason): void;
  /** A cloud event refused for `ingest.cloudEvents` (counted in `rejected` too). */
  cloudLimitHit?(limit: CloudEventLimit): void;
}
