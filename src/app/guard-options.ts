import type { Logger } from 'pino';
import type { CredentialCheck, GuardCounters, GuardOptions } from '../broker/index.js';
import type { Config } from '../config/index.js';

/** The guard's settings from the `mqtt` configuration (on the device edge's thread, whichever it is). */
export function guardOptions(
  mqtt: Config['mqtt'],
  credentials: CredentialCheck,
  logger: Logger,
  counters: GuardCounters,
): GuardOptions {
  return {
    allowAnonymous: mqtt.allowAnonymous,
    credentials,
    maxConnections: mqtt.maxConnections,
    maxPendingPerAddress: mqtt.maxPendingPerAddress,
    connectTimeoutMs: mqtt.connectTimeout,
    topics: { maxTopicBytes: mqtt.maxTopicBytes, maxTopicLevels: mqtt.maxTopicLevels },
    maxSubscriptions: mqtt.maxSubscriptions,
    publishRate: {
      perSecond: mqtt.publishRate.perSecond,
      burst: mqtt.publishRate.burst,
      disconnectAfterMs: mqtt.publishRate.disconnectAfter,
    },
    logger,
    counters,
  };
}
