import { DeviceGuard, sessionMetrics, startBroker, type Broker, type ClientInfo } from '../broker/index.js';
import { CommandMetrics, DeviceCommands, type DeviceCommandsOptions } from '../commands/index.js';
import { cloudEventMetrics, Ingest, type DeadLetter, type PublishSource } from '../ingest/index.js';
import { DurableInputs, UPSTREAM_SENDER } from '../runtime/index.js';
import { DEAD_LETTER_TOPIC, upstreamTopics } from '../shared/index.js';
import { CredentialStore, READ_AHEAD_MAX } from '../credentials/index.js';
import { MqttSessions } from '../store/index.js';
import type { CloudMessage } from '../upstream/index.js';
import { cloudCommandHandler, cloudCommandReports, type CloudCommandReports } from './cloud-commands.js';
import type { DecisionModule } from './decision.js';
import { guardOptions } from './guard-options.js';
import type { Foundation } from './foundation.js';
import type { Started } from './modules.js';
import type { UplinkModule } from './uplink.js';

/** How often device commands past their ttl leave the command outbox (and waiting ones are offered again). */
const COMMAND_SWEEP_EVERY_MS = 30_000;

/** The broker devices connect to, with authentication, limits and ingest (docs/architecture.md, "Device edge"). */
export interface DeviceEdge extends Started {
  readonly broker: Broker;
  /** Ends a device's connection (its credential was revoked); false when it was not connected. */
  readonly guard: Pick<DeviceGuard, 'disconnect'>;
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
  const cloudEvents = { maxBytes: config.ingest.cloudEvents.maxBytes, ...config.ingest.cloudEvents.rate };
  const ingest = new Ingest({
    clock: () => decision.clock.now(),
    logger,
    maxPayloadBytes: config.ingest.maxPayloadBytes,
    cloudEvents: { ...cloudEvents, now: () => performance.now() },
    deadLetter,
    metrics: {
      accepted: (type, source) => metrics.countEventIn(type, source ?? 'device'),
      rejected: (reason) => metrics.ingestRejects.inc({ reason }),
      ...cloudEventMetrics(metrics.registry, cloudEvents),
    },
    // In the decision loop's order per device; recorded first, applied once recorded (docs/durability.md).
    ordered: decision.entrance,
  });
  uplink.route(upstreamTopics(base.gatewayId).events, (payload, message) =>
    receiveCloudEvent(durable, ingest, payload, message),
  );

  const credentials = new CredentialStore(store.sublevels.creds);
  readCredentialsAhead(credentials, durable, logger);
  const guard = deviceGuard(base, credentials);
  const { commands, reports } = commandsWithCloud(base, decision, uplink, credentials, () => broker);
  const sessions = await openSessions(base);
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
    sessions,
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
        return heldBack(ingest.handleDevicePublish(client, topic, payload, qos, source), qos, decision);
      },
      onConnected: (client) => {
        metrics.devicesConnected.set(broker?.connectedCount ?? 0);
        if (!client.internal) ingest.handleBrokerEvent(client.id, 'connected');
        commands.deviceReady(client.id);
      },
      // Once the device is subscribed (by SUBSCRIBE, or its persistent session's subscriptions), what waits is sent.
      onSubscribed: (client) => commands.deviceReady(client.id),
      onDisconnected: (client, reason) => {
        metrics.devicesConnected.set(broker?.connectedCount ?? 0);
        if (!client.internal) ingest.handleBrokerEvent(client.id, 'disconnected', { reason });
      },
    },
  }).catch(closeAndThrow(sessions));
  const started = broker;
  // Decided again during recovery too: the command outbox keeps an id once and remembers what was acknowledged.
  decision.onSent(({ action, to }, replay) => {
    if (to.includes('device')) commands.decided(action, replay);
  });
  decision.recovered.then(
    () => commands.sweepEvery(COMMAND_SWEEP_EVERY_MS),
    () => undefined,
  );
  return {
    broker: started,
    guard,
    credentials,
    async stop() {
      // Stop accepting devices, then let the events already queued for their profiles finish.
      await started.close();
      credentials.forgetReadAhead();
      await sessions.close();
      await ingest.drain();
      // Commands decided from here on (the decision loop applies what is left) are queued for the next start.
      await commands.stop();
      reports.stop();
    },
  };
}

/**
 * Reads the credentials of the devices likely to reconnect first (`CredentialStore.readAhead`) while the broker starts:
 * after a restart they come all at once.
 */
export function readCredentialsAhead(
  credentials: CredentialStore,
  durable: DurableInputs,
  logger: Foundation['logger'],
): void {
  const devices = durable.recentActors(READ_AHEAD_MAX);
  if (devices.length === 0) return;
  const from = performance.now();
  credentials.readAhead(devices).then(
    (kept) =>
      logger.info({ devices: kept, ms: Math.round(performance.now() - from) }, 'credentials read ahead'),
    (err: unknown) =>
      logger.warn({ err }, 'credentials could not be read ahead; each is read at its CONNECT'),
  );
}

/**
 * What the broker waits for before it acknowledges a publish (and reads on): QoS 1 its record. QoS 0 has no
 * acknowledgement to hold back; its publisher waits only while inputs pile up (a bounded queue half full).
 */
function heldBack(
  accepted: Promise<void> | void,
  qos: 0 | 1 | 2,
  decision: DecisionModule,
): Promise<void> | void {
  if (decision.congested) return Promise.resolve(accepted).then(() => decision.relieved());
  return qos > 0 || decision.durable.congested ? accepted : undefined;
}

/**
 * The broker's persistent sessions and retained messages, in the store's LevelDB (docs/mqtt.md); `onExpired` is
 * told of each session that expires, after the metrics.
 */
export async function openSessions(
  base: Foundation,
  onExpired?: (clientId: string) => void,
): Promise<MqttSessions> {
  const { config, logger, metrics, store } = base;
  const { sessions: limits, retained } = config.mqtt;
  let opened: MqttSessions | undefined;
  const zero = { sessions: 0, queued: 0, queuedBytes: 0, retained: 0, retainedBytes: 0 };
  const observers = sessionMetrics(metrics.registry, logger, () => opened?.stats() ?? zero);
  const sessions = await MqttSessions.open(store.db, {
    limits: {
      maxQueued: limits.maxQueued,
      maxQueuedBytes: limits.maxQueuedBytes,
      expiryMs: limits.expiry,
      retainedPerDevice: retained.maxPerDevice,
      retainedCount: retained.maxCount,
      retainedBytes: retained.maxBytes,
    },
    syncIntervalMs: config.durability.syncInterval,
    ...observers,
    onExpired: (clientId, queued) => {
      observers.onExpired(clientId, queued);
      onExpired?.(clientId);
    },
  });
  opened = sessions;
  if (sessions.unreadableOnOpen > 0) {
    logger.warn(
      { entries: sessions.unreadableOnOpen },
      'mqtt session records that cannot be decoded were skipped',
    );
  }
  return sessions;
}

/** For a start that failed: closes what was opened for it, then fails as it did. */
export function closeAndThrow(opened: { close(): Promise<void> }): (err: unknown) => Promise<never> {
  return async (err) => {
    await opened.close();
    throw err;
  };
}

/**
 * A cloud event is acknowledged to the cloud broker once its record is synced, as a device's QoS 1 publish is;
 * the broker's redelivery of one already recorded (the gateway died before the PUBACK) is acknowledged and not
 * decided again.
 */
export function receiveCloudEvent(
  durable: DurableInputs,
  ingest: Ingest,
  payload: Buffer,
  message: CloudMessage,
): Promise<void> | void {
  const { qos, messageId, topic } = message;
  if (qos === 0 || messageId === undefined) return ingest.handleCloudEvent(payload, topic, { qos: 0 });
  const hash = DurableInputs.hashPublish(topic, payload);
  const source = { clientId: UPSTREAM_SENDER, connection: message.connection, messageId, hash };
  // The cloud broker numbers its packets in sequence: a repeat of id and payload is a redelivery, whenever.
  return (
    durable.resent(source, message.dup, true) ?? ingest.handleCloudEvent(payload, topic, { qos, source })
  );
}

/** Device commands, and the commands the cloud sends on `vigil/{gw}/commands` through them (docs/sync.md). */
export function commandsWithCloud(
  base: Foundation,
  decision: DecisionModule,
  uplink: UplinkModule,
  credentials: CredentialStore,
  broker: () => Broker | undefined,
): { commands: DeviceCommands; reports: CloudCommandReports } {
  const reports = cloudCommandReports(base, decision, uplink);
  const commands = deviceCommands(base, decision, broker, reports.onFate);
  uplink.route(
    upstreamTopics(base.gatewayId).commands,
    cloudCommandHandler(base, decision, { reports, commands, credentials }),
  );
  return { commands, reports };
}

/** Device commands with their durable outbox (docs/durability.md, "Device commands"), sent through `broker`. */
function deviceCommands(
  base: Foundation,
  decision: DecisionModule,
  broker: () => Broker | undefined,
  onFate: NonNullable<DeviceCommandsOptions['onFate']>,
): DeviceCommands {
  const { store, logger, metrics } = base;
  const outbox = store.commands;
  if (outbox.unreadableOnOpen > 0) {
    logger.warn(
      { entries: outbox.unreadableOnOpen },
      'command outbox entries that cannot be decoded were skipped',
    );
  }
  return new DeviceCommands({
    outbox,
    link: {
      sendTo: (clientId, topic, payload) =>
        broker()?.sendTo(clientId, topic, payload) ?? Promise.resolve('not-connected'),
      publish: (topic, payload, opts) => broker()?.publish(topic, payload, opts) ?? Promise.resolve(),
    },
    now: () => decision.clock.now(),
    policy: () => decision.rules.rules.policy,
    metrics: new CommandMetrics(metrics.registry, metrics.commandsSent),
    logger,
    holdCheckpointsFor: (write) => decision.holdCheckpointsFor(write),
    notResent: () => decision.durable.metrics.commandsNotResent.inc(),
    onFate,
  });
}

function deviceGuard(base: Foundation, credentials: CredentialStore): DeviceGuard {
  const { metrics } = base;
  const mqtt = base.config.mqtt;
  reportLimits(base);
  return new DeviceGuard(
    guardOptions(mqtt, credentials, base.logger, {
      authRefused: (reason) => metrics.authRefusals.inc({ reason }),
      aclRefused: (action) => metrics.aclRefusals.inc({ action }),
      limitHit: (limit) => metrics.limitHits.inc({ limit }),
      protocolError: () => metrics.protocolErrors.inc(),
      openConnections: (n) => metrics.mqttConnections.set(n),
      pendingConnections: (n) => metrics.mqttPendingConnections.set(n),
    }),
  );
}

/** The MQTT limits in force, as gauges (`vigil_mqtt_limit`). */
export function reportLimits(base: Foundation): void {
  const mqtt = base.config.mqtt;
  for (const [limit, value] of Object.entries({
    'max-connections': mqtt.maxConnections,
    'max-pending-per-address': mqtt.maxPendingPerAddress,
    'connect-timeout-ms': mqtt.connectTimeout,
    'max-packet-bytes': mqtt.maxPacketBytes,
    'max-topic-bytes': mqtt.maxTopicBytes,
    'max-topic-levels': mqtt.maxTopicLevels,
    'max-subscriptions': mqtt.maxSubscriptions,
    'publish-rate-per-second': mqtt.publishRate.perSecond,
    'publish-rate-burst': mqtt.publishRate.burst,
    'session-max-queued': mqtt.sessions.maxQueued,
    'session-max-queued-bytes': mqtt.sessions.maxQueuedBytes,
    'session-expiry-ms': mqtt.sessions.expiry,
    'retained-max-per-device': mqtt.retained.maxPerDevice,
    'retained-max-count': mqtt.retained.maxCount,
    'retained-max-bytes': mqtt.retained.maxBytes,
  })) {
    base.metrics.mqttLimits.set({ limit }, value);
  }
}
