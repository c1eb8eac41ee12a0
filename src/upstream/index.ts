export type {
  Uplink,
  BatchOptions,
  CloudMessage,
  CloudMessageHandler,
  SessionOptions,
  UplinkOptions,
} from './uplink.js';
export { loadUplink } from './load-uplink.js';
export type { OutboxSource } from './outbox-source.js';
export { queuedExpired } from './queued-expired.js';
export { readUpstreamTls, type UpstreamTls } from './upstream-tls.js';
export { HealthReporter, type HealthReport, type HealthSources } from './health-report.js';
export { TelemetryLane } from './telemetry-lane.js';
export type { TelemetryCounts, TelemetryDrop, TelemetryLaneOptions } from './telemetry-lane.js';
