export { startBroker } from './broker.js';
export { startLocalBroker } from './local-broker.js';
export { BrokerClosedError } from './errors.js';
export type {
  Broker,
  BrokerHooks,
  BrokerOptions,
  ClientInfo,
  DisconnectReason,
  PublishOptions,
  PublishPacketInfo,
  SendOutcome,
  SessionPersistence,
} from './types.js';
export { topicMatches } from './subscriptions.js';
export { DeviceGuard } from './guard.js';
export type { GuardCounters, GuardOptions } from './guard.js';
export type { LimitName } from './limits.js';
export { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_PENDING_PER_ADDRESS } from './admission.js';
export { checkPublish, checkSubscribe } from './acl.js';
export type { Identity, TopicLimits, TopicRefusal, TopicVerdict } from './acl.js';
export { authenticateConnect } from './auth.js';
export type { AuthRefusal, AuthResult, ConnectAttempt, CredentialCheck } from './auth.js';
export { PublishThrottle } from './rate-limit.js';
export type { PublishRate, RateVerdict } from './rate-limit.js';
export { ConnectThrottle } from './connect-throttle.js';
export type { ConnectThrottleOptions } from './connect-throttle.js';
export { readTlsFiles } from './tls.js';
export type { TlsListenerOptions, TlsMaterial } from './tls.js';
export { sessionMetrics } from './session-metrics.js';
export type { SessionCounts, SessionDropNotice, SessionObservers } from './session-metrics.js';
