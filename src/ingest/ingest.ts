import type { Logger } from 'pino';
import { DEVICE_EVENT_SCHEME, parseDeviceTopic, upstreamTopics, type Event } from '../shared/index.js';
import { parseCloudEvent } from './cloud-event.js';
import { CloudEventLimits, type CloudEventLimitsOptions } from './cloud-event-limits.js';
import { decodePayload } from './decode-payload.js';
import { OrderedDelivery, type Deliver } from './ordered-delivery.js';
import type {
  DeadLetter,
  IngestMetrics,
  ProfileSource,
  PublishingClient,
  PublishMeta,
  PublishSource,
} from './types.js';

export type IngestOptions = IngestSettings &
  (
    | {
        profiles: ProfileSource;
        /**
         * Receives every accepted event with its device's profile, in arrival order per device. A promise it
         * returns for a device publish is what the broker waits for before it acknowledges (see `Deliver`).
         */
        deliver: Deliver;
      }
    /** Accepted events join this per-device order, shared with other inputs (timer firings). */
    | { ordered: OrderedDelivery }
  );

interface IngestSettings {
  deadLetter: (record: DeadLetter) => void;
  /** Gateway time in ms, stamped on each event as it arrives. */
  clock: () => number;
  logger: Logger;
  maxPayloadBytes: number;
  metrics?: IngestMetrics;
  /** Bounds on cloud events; without them a cloud event is bounded by `maxPayloadBytes` alone. `now`: monotonic ms. */
  cloudEvents?: CloudEventLimitsOptions & { now: () => number };
}

/** Where a dead letter says a cloud event came from when the caller does not name the topic. */
const CLOUD_TOPIC = upstreamTopics('+').events;
/** How much of a refused payload the dead letter carries. */
const DEAD_LETTER_PAYLOAD_BYTES = 1024;

/**
 * Turns device publishes, broker connection changes and cloud events into Events: decodes and
 * validates them, refuses bad ones as values (counted, logged, dead-lettered), and delivers the rest
 * with the device's profile, in arrival order per device.
 */
export class Ingest {
  private readonly ordered: OrderedDelivery;
  private readonly cloudLimits: CloudEventLimits | undefined;

  constructor(private readonly opts: IngestOptions) {
    this.ordered =
      'ordered' in opts ? opts.ordered : new OrderedDelivery(opts.profiles, opts.deliver, opts.logger);
    const cloud = opts.cloudEvents;
    this.cloudLimits = cloud && new CloudEventLimits(cloud, cloud.now);
  }

  /** Events waiting for a profile read. */
  get queued(): number {
    return this.ordered.queued;
  }

  /**
   * A publish under `devices/…/events/…`. A refused publish is still to be acknowledged, or the device
   * would resend it forever: nothing is returned for it. For an accepted one, what `deliver` returned for
   * it (possibly after the profile read): acknowledge once that settles.
   */
  handleDevicePublish(
    client: PublishingClient,
    topic: string,
    payload: Buffer,
    qos: 0 | 1 | 2,
    source?: PublishSource,
  ): Promise<void> | void {
    const at = this.opts.clock();
    const parsed = parseDeviceTopic(topic);
    if (!parsed.ok) {
      const detail = `topic ${JSON.stringify(topic)} is not ${DEVICE_EVENT_SCHEME}`;
      this.reject(
        { reason: 'topic', detail, topic, clientId: client.id, at, ...deviceOf(parsed.deviceId) },
        payload,
        client,
      );
      return;
    }
    const decoded = decodePayload(payload, this.opts.maxPayloadBytes);
    if (!decoded.ok) {
      const { reason, detail } = decoded;
      this.reject(
        { reason, detail, topic, clientId: client.id, deviceId: parsed.deviceId, at },
        payload,
        client,
      );
      return;
    }
    const { deviceId: actor, type } = parsed;
    // Made whole at once: a property added afterwards would give the event a backing store of its own.
    const ev: Event =
      decoded.deviceAt === undefined
        ? { actor, type, at, data: decoded.data, source: 'device' }
        : { actor, type, at, data: decoded.data, source: 'device', deviceAt: decoded.deviceAt };
    return this.accept(ev, source === undefined ? QOS_ONLY[qos] : { qos, source });
  }

  /** A device's connection came up or went down, as the broker saw it. */
  handleBrokerEvent(
    deviceId: string,
    kind: 'connected' | 'disconnected',
    data: Record<string, unknown> = {},
  ): void {
    void this.accept({ actor: deviceId, type: kind, at: this.opts.clock(), data, source: 'broker' });
  }

  /**
   * An event about a device from a business system, received on `vigil/{gw}/events`. As for a device publish:
   * nothing is returned for a refused one (acknowledge it, or the broker delivers it forever); for an accepted
   * one, what `deliver` returned for it with `meta`: acknowledge once that settles.
   */
  handleCloudEvent(payload: Buffer, topic: string = CLOUD_TOPIC, meta?: PublishMeta): Promise<void> | void {
    const at = this.opts.clock();
    const limited = this.cloudLimits?.admit(payload.length);
    if (limited !== undefined && !limited.ok) {
      this.opts.metrics?.cloudLimitHit?.(limited.limit);
      const reason = limited.limit === 'size' ? 'too-large' : 'rate';
      this.reject({ reason, detail: limited.detail, topic, at }, payload, undefined);
      return;
    }
    const parsed = parseCloudEvent(payload, this.opts.cloudEvents?.maxBytes ?? this.opts.maxPayloadBytes);
    if (!parsed.ok) {
      const { reason, detail } = parsed;
      this.reject({ reason, detail, topic, at, ...deviceOf(parsed.actor) }, payload, undefined);
      return;
    }
    const { actor, type, data } = parsed.event;
    return this.accept({ actor, type, at, data, source: 'cloud' }, meta);
  }

  /** Resolves when no event is waiting for a profile read (for shutdown). */
  drain(): Promise<void> {
    return this.ordered.drain();
  }

  private accept(ev: Event, meta?: PublishMeta): Promise<void> | void {
    this.opts.metrics?.accepted(ev.type, ev.source);
    return this.ordered.push(ev, meta);
  }

  private reject(record: DeadLetter, payload: Buffer, client: PublishingClient | undefined): void {
    if (payload.length > 0)
      record.payloadBase64 = payload.subarray(0, DEAD_LETTER_PAYLOAD_BYTES).toString('base64');
    this.opts.metrics?.rejected(record.reason);
    this.opts.logger.warn(
      {
        reason: record.reason,
        detail: record.detail,
        topic: record.topic,
        clientId: client?.id,
        address: client?.address,
        deviceId: record.deviceId,
      },
      'input refused',
    );
    try {
      this.opts.deadLetter(record);
    } catch (err) {
      this.opts.logger.error({ err, reason: record.reason }, 'dead letter could not be handed on');
    }
  }
}

/**
 * The meta of a publish without a source, one per level rather than one per publish. A QoS 0 publisher waits only
 * while the gateway is congested (`heldBack`, src/app/device-edge.ts).
 */
const QOS_ONLY: Readonly<Record<0 | 1 | 2, PublishMeta>> = {
  0: Object.freeze({ qos: 0, waitsOnlyIfCongested: true }),
  1: Object.freeze({ qos: 1 }),
  2: Object.freeze({ qos: 2 }),
};

function deviceOf(deviceId: string | undefined): { deviceId?: string } {
  return deviceId === undefined ? {} : { deviceId };
}
