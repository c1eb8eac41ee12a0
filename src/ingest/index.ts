export { Ingest, type IngestOptions } from './ingest.js';
export { decodePayload, type DecodedPayload, type DecodeFailureReason } from './decode-payload.js';
export { parseCloudEvent, type CloudEvent, type ParsedCloudEvent } from './cloud-event.js';
export { CloudEventLimits, cloudEventMetrics } from './cloud-event-limits.js';
export type { CloudEventLimit, CloudEventLimitsOptions, CloudEventVerdict } from './cloud-event-limits.js';
export { OrderedDelivery, type Deliver, type DeliveryBound, type HandOn } from './ordered-delivery.js';
export type {
  DeadLetter,
  IngestMetrics,
  ProfilePeek,
  ProfileSource,
  PublishingClient,
  PublishMeta,
  PublishSource,
  RejectReason,
} from './types.js';
