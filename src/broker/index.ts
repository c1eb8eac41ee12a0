export { startBroker, isDeviceEventTopic } from './broker.js';
export { BrokerClosedError, MalformedPacketError, PacketTooLargeError } from './errors.js';
export type {
  Broker,
  BrokerHooks,
  BrokerOptions,
  ClientInfo,
  DisconnectReason,
  PublishOptions,
} from './types.js';
