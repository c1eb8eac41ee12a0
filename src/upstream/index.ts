export {
  Uplink,
  type BatchOptions,
  type CloudMessage,
  type CloudMessageHandler,
  type SessionOptions,
  type UplinkOptions,
} from './uplink.js';
export type { OutboxSource } from './outbox-source.js';
export { queuedExpired } from './queued-expired.js';
export { readUpstreamTls, type UpstreamTls } from './upstream-tls.js';
