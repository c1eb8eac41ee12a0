import { DeviceGuard, startBroker, type Broker, type ClientInfo } from '../broker/index.js';
import { Ingest, type DeadLetter, type PublishSource } from '../ingest/index.js';
import { DurableInputs } from '../runtime/index.js';
import type { Candidate } from '../shared/index.js';
import { CredentialStore } from '../store/index.js';
import { upstreamTopics } from '../upstream/index.js';
import type { DecisionModule } from './decision.js';
import type { Foundation } from './foundation.js';
import type { Started } from './modules.js';
import type { UplinkModule } from './uplink.js';

/** Local topic where refused publishes are reported, with the reason. */
export const DEAD_LETTER_TOPIC = 'vigil/deadletter';

/** The broker devices connect to, with authentication, limits and ingest (docs/architecture.md, "Device edge"). */
export interface DeviceEdge extends Started {
  readonly broker: Broker;
  readonly guard: DeviceGuard;
  readonly credentials: CredentialStore;
}

/**
 * Starts the broker. Every accepted event is recorded by the decision loop's journal before a QoS 1 publish is
 * acknowledged; cloud events from the uplink take the same way in.
 */
export async function startDeviceEdge(
  base: Foundation,
  decision: DecisionModule,
  uplink: UplinkModule,
): Promise<DeviceEdge> {
  const { config, logger, metrics, store } = base;
  const { durable } = decision;
  let broker: Broker | undefined;
  const deadLetter = (record: DeadLetter): void => {
    broker?.publish(DEAD_LETTER_TOPIC, JSON.stringify(record)).catch((err: unknown) => {
      logger.warn({ err }, 'dead letter not published');
    });
  };
  const ingest = new Ingest({
    clock: () => decision.clock.now(),
    logger,
    maxPayloadBytes: config.ingest.maxPayloadBytes,
    deadLetter,
    metrics: {
      accepted: (type, source) =>
        metrics.eventsIn.inc({ type: metrics.eventType(type), source: source ?? 'device' }),
      rejected: (reason) => metrics.ingestRejects.inc({ reason }),
    },
    // In the decision loop's order per device; recorded first, applied once recorded (docs/durability.md).
    ordered: decision.entrance,
  });
  uplink.route(upstreamTopics(base.gatewayId).events, (payload) => ingest.handleCloudEvent(payload));

  const credentials = new CredentialStore(store.sublevels.creds);
  const guard = deviceGuard(base, credentials);
  broker = await startBroker({
    host: config.mqtt.host,
    port: config.mqtt.port,
    maxPacketBytes: config.mqtt.maxPacketBytes,
    logger,
    guard,
    tls: base.files.mqttTls && {
      ...base.files.mqttTls,
      host: config.mqtt.tls.host ?? config.mqtt.host,
      port: config.mqtt.tls.port,
    },
    hooks: {
      // Acknowledged once recorded (QoS 1); a resend of a recorded publish is acknowledged, not processed.
      onPublish: (client: ClientInfo, topic, payload, qos, packet) => {
        let source: PublishSource | undefined;
        if (qos > 0 && packet.messageId !== undefined) {
          const hash = DurableInputs.hashPublish(topic, payload);
          source = { clientId: client.id, connection: packet.connection, messageId: packet.messageId, hash };
          const resend = durable.resent(source, packet.dup);
          if (resend) return resend;
        }
        const accepted = ingest.handleDevicePublish(client, topic, payload, qos, source);
        // QoS 0 has no acknowledgement to hold back; its publisher waits only while inputs pile up.
        return qos > 0 || durable.congested ? accepted : undefined;
      },
      onConnected: (client) => {
        metrics.devicesConnected.set(broker?.connectedCount ?? 0);
        if (!client.internal) ingest.handleBrokerEvent(client.id, 'connected');
      },
      onDisconnected: (client, reason) => {
        metrics.devicesConnected.set(broker?.connectedCount ?? 0);
        if (!client.internal) ingest.handleBrokerEvent(client.id, 'disconnected', { reason });
      },
    },
  });
  const started = broker;
  decision.onSent((candidate, replay) => sendCommand(base, decision, started, candidate, replay));
  return {
    broker: started,
    guard,
    credentials,
    async stop() {
      // Stop accepting devices, then let the events already queued for their profiles finish.
      await started.close();
      await ingest.drain();
    },
  };
}

/**
 * A decided command to a device. During recovery it is not sent again: it was sent when first decided (in the
 * same turn as its input was applied), and a command acts on the world.
 */
function sendCommand(
  base: Foundation,
  decision: DecisionModule,
  broker: Broker,
  { action, to }: Candidate,
  replay: boolean,
): void {
  if (!to.includes('device')) return;
  if (replay) {
    decision.durable.metrics.commandsNotResent.inc();
    return;
  }
  base.metrics.commandsSent.inc();
  broker
    .publish(`devices/${action.actor}/commands/${action.action}`, JSON.stringify(action))
    .catch((err: unknown) => {
      base.logger.warn({ err, actor: action.actor, action: action.action }, 'device command not published');
    });
}

function deviceGuard(base: Foundation, credentials: CredentialStore): DeviceGuard {
  const { metrics } = base;
  const mqtt = base.config.mqtt;
  for (const [limit, value] of Object.entries({
    'max-connections': mqtt.maxConnections,
    'max-packet-bytes': mqtt.maxPacketBytes,
    'max-topic-bytes': mqtt.maxTopicBytes,
    'max-topic-levels': mqtt.maxTopicLevels,
    'max-subscriptions': mqtt.maxSubscriptions,
    'publish-rate-per-second': mqtt.publishRate.perSecond,
    'publish-rate-burst': mqtt.publishRate.burst,
  })) {
    metrics.mqttLimits.set({ limit }, value);
  }
  return new DeviceGuard({
    allowAnonymous: mqtt.allowAnonymous,
    credentials,
    maxConnections: mqtt.maxConnections,
    topics: { maxTopicBytes: mqtt.maxTopicBytes, maxTopicLevels: mqtt.maxTopicLevels },
    maxSubscriptions: mqtt.maxSubscriptions,
    publishRate: {
      perSecond: mqtt.publishRate.perSecond,
      burst: mqtt.publishRate.burst,
      disconnectAfterMs: mqtt.publishRate.disconnectAfter,
    },
    logger: base.logger,
    counters: {
      authRefused: (reason) => metrics.authRefusals.inc({ reason }),
      aclRefused: (action) => metrics.aclRefusals.inc({ action }),
      limitHit: (limit) => metrics.limitHits.inc({ limit }),
      protocolError: () => metrics.protocolErrors.inc(),
      openConnections: (n) => metrics.mqttConnections.set(n),
    },
  });
}
