export { startBroker, isDeviceEventTopic } from './broker.js';
export { startLocalBroker } from './local-broker.js';
export { BrokerClosedError, MalformedPacketError, PacketTooLargeError } from './errors.js';
export type {
  Broker,
  BrokerHooks,
  BrokerOptions,
  ClientInfo,
  DisconnectReason,
  PublishOptions,
  PublishPacketInfo,
  SendOutcome,
} from './types.js';
export { topicMatches } from './subscriptions.js';
export { DeviceGuard } from './guard.js';
export type { GuardCounters, GuardOptions, LimitName } from './guard.js';
export { checkPublish, checkSubscribe, devicePrefix } from './acl.js';
export type { Identity, TopicLimits, TopicRefusal, TopicVerdict } from './acl.js';
export { authenticateConnect } from './auth.js';
export type { AuthRefusal, AuthResult, ConnectAttempt, CredentialCheck } from './auth.js';
export { PublishThrottle } from './rate-limit.js';
export type { PublishRate, RateVerdict } from './rate-limit.js';
export { ConnectThrottle, DEFAULT_CONNECT_THROTTLE } from './connect-throttle.js';
export type { ConnectThrottleOptions } from './connect-throttle.js';
export { ConnectRefusedError, MalformedTopicError, PublishRateError } from './security-errors.js';
export { readPem, readTlsFiles, commonNameOf } from './tls.js';
export type { TlsListenerOptions, TlsMaterial } from './tls.js';
