import { chmod, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { Gauge } from 'prom-client';
import { DeviceGuard, readTlsFiles, startBroker, type Broker, type ClientInfo } from './broker/index.js';
import type { Config } from './config/index.js';
import {
  apiAuthorizer,
  DeviceActivity,
  HttpServer,
  mountDashboard,
  OPEN_PATHS,
  RecentActions,
  sendJson,
} from './dashboard/index.js';
import { TimerQueue, type ScenarioStats } from './engine/index.js';
import { Ingest, type DeadLetter, type PublishSource } from './ingest/index.js';
import { loadRulesDir, shippedRulesDir, type RuleSet } from './rules/index.js';
import {
  clockNotBefore,
  DurableInputs,
  Metrics,
  monotonicClock,
  Pipeline,
  Recorder,
  retryUntilDone,
  TimerDriver,
  type Clock,
  type JournalStorage,
  type RecoveryReport,
} from './runtime/index.js';
import { RuleError, type Action, type Candidate } from './shared/index.js';
import {
  AuditLog,
  auditEntryOf,
  auditLogRoute,
  cborInUse,
  CredentialStore,
  credentialRoutes,
  openStore,
  profileRoutes,
  type Store,
} from './store/index.js';
import {
  BundleStore,
  chooseStartupRules,
  readTrustedKeys,
  startCloudSync,
  type CloudSync,
  type RulesStatus,
} from './sync/index.js';
import { queuedExpired, readUpstreamTls, Uplink, upstreamTopics } from './upstream/index.js';

/** Local topic where refused publishes are reported, with the reason. */
export const DEAD_LETTER_TOPIC = 'vigil/deadletter';

/** How often the arbiter forgets what its windows no longer see, and expired actions leave the outbox. */
const HOUSEKEEPING_EVERY_MS = 60_000;

export interface GatewayOptions {
  logger?: Logger;
  clock?: Clock;
  /** Observers for the dashboard and tests. */
  onAction?: (action: Action, suppressed: string | undefined) => void;
  /** Rule files that replace those of the same name in the rules directory (the demo's short periods). */
  rulesOverlay?: string;
  /** Where the journal and checkpoints are written (tests inject storage faults here); default the filesystem. */
  journalStorage?: JournalStorage;
}

export interface Gateway {
  readonly config: Config;
  readonly mqtt: { host: string; port: number };
  /** The TLS listener for devices, when `mqtt.tls` has a certificate and key. */
  readonly mqtts: { host: string; port: number } | undefined;
  readonly http: { host: string; port: number };
  /** The rules in force: from the stored bundle or the rules directory at start, then as swapped. */
  readonly rules: RuleSet;
  /** Rules and profiles from the cloud (docs/sync.md). */
  readonly sync: CloudSync;
  /** SIGHUP: reloads the local rules directory with the same compile-then-swap as a bundle. */
  reloadRules(): Promise<RulesStatus>;
  readonly store: Store;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Per scenario: evaluations, matches, errors, last firing. */
  scenarioStats(): ScenarioStats[];
  /**
   * Settles once the state is recovered (checkpoint and journal replay) and inputs are processed live; the
   * broker accepts and acknowledges meanwhile. Rejects only if recovery itself failed.
   */
  readonly recovered: Promise<RecoveryReport>;
  /** Stops accepting, finishes in-flight work, closes the store. Idempotent. */
  stop(): Promise<void>;
}

/** Wires the stages of DESIGN.md's data flow together and starts them. */
export async function startGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? pino({ level: config.log.level });
  let clock: Clock = opts.clock ?? monotonicClock();
  const metrics = new Metrics();
  const gw = config.gatewayId;

  const rulesDir = config.rules ?? shippedRulesDir();
  const loaded = await loadRulesDir(
    rulesDir,
    opts.rulesOverlay !== undefined ? { overlay: opts.rulesOverlay } : {},
  );
  if (!loaded.ok) throw new RuleError(loaded.problems);
  // Replaced by a stored bundle at start, and by every rules swap after.
  let rules = loaded.rules;
  logger.info({ dir: rulesDir, scenarios: rules.scenarios.length }, 'rules loaded');

  // Checked before anything opens: a local API reachable from other machines needs a token, and the
  // TLS files must be readable (docs/security.md).
  const authorizeHttp = apiAuthorizer(config.http);
  const mqttTls = await readTlsFiles(config.mqtt.tls, 'mqtt.tls');
  const upstreamTls = await readUpstreamTls(config.upstream.tls);
  const trustedKeys = await readTrustedKeys(config.sync.trustedKeys);
  if (config.mqtt.allowAnonymous) {
    logger.warn(
      'ANONYMOUS DEVICES ALLOWED (mqtt.allowAnonymous / --allow-anonymous): any client can connect without ' +
        'credentials and publish events as any device. For development only.',
    );
  }

  const dataDir = resolve(config.data);
  const store = await openStore(dataDir, {
    profileCacheSize: config.profiles.cacheSize,
    outbox: { maxCount: config.outbox.maxCount, maxBytes: config.outbox.maxBytes },
  });
  if (store.outbox.unreadableOnOpen > 0) {
    logger.warn(
      { entries: store.outbox.unreadableOnOpen },
      'outbox entries that cannot be decoded were left on disk and skipped',
    );
  }
  const closers: Array<() => Promise<void> | void> = [() => store.close()];
  // Set once stopping starts: retries of failed writes give up then.
  let closing = false;
  const closeAll = async () => {
    closing = true;
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (err) {
        logger.error({ err }, 'error during shutdown');
      }
    }
  };

  try {
    const audit = await AuditLog.open(store.sublevels.audit, {
      onError: (err) => logger.warn({ err }, 'audit log write failed; those entries are lost'),
    });
    // Closes after everything that records decisions, before the store.
    closers.push(() => audit.close());
    const recorder = config.record !== undefined ? new Recorder(config.record, logger) : undefined;
    if (recorder) closers.push(() => recorder.close());

    // Inputs are recorded before they are processed, and the state is what the last checkpoint and the
    // journal after it say (docs/durability.md).
    const durable = await DurableInputs.open({
      dir: join(dataDir, 'journal'),
      logger,
      registry: metrics.registry,
      storage: opts.journalStorage,
      settings: {
        checkpointIntervalMs: config.durability.checkpointInterval,
        checkpointRecords: config.durability.checkpointRecords,
        maxGraceMs: config.durability.maxGrace,
        syncIntervalMs: config.durability.syncInterval,
        commitWindowMs: config.durability.commitWindow,
      },
    });
    // Closes once the stages that feed it have stopped, before the store: it applies what is left, then
    // takes a last checkpoint.
    closers.push(() => durable.close());
    if (opts.clock === undefined && durable.lastKnownAt !== undefined) {
      clock = clockNotBefore(clock, durable.lastKnownAt, logger);
    }
    // A bundle from the cloud (or `vigil rules apply`), when one is stored, comes ahead of the rules directory.
    const bundles = new BundleStore(store.sublevels.rules);
    const startup = await chooseStartupRules({ bundles, trustedKeys, dirRules: rules, logger });
    rules = startup.rules;
    const { engine, arbiter } = durable.restore(rules, { gateway: gw });
    // What the dashboard reads; fed below, one ring write per decision and one map write per event.
    const recentActions = new RecentActions();
    const deviceActivity = new DeviceActivity({ now: () => clock.now() });
    let broker: Broker | undefined;
    let uplink: Uplink | undefined;

    // `replay`: decided again while recovery replays the journal. A device command is not sent again: it was
    // sent when first decided (in the same turn as its input was applied), and a command acts on the world.
    const dispatch = (candidate: Candidate, replay = false): void => {
      const { action, to } = candidate;
      if (to.includes('device') && broker && replay) durable.metrics.commandsNotResent.inc();
      else if (to.includes('device') && broker) {
        metrics.commandsSent.inc();
        broker
          .publish(`devices/${action.actor}/commands/${action.action}`, JSON.stringify(action))
          .catch((err: unknown) => {
            logger.warn({ err, actor: action.actor, action: action.action }, 'device command not published');
          });
      }
      if (to.includes('upstream')) {
        // Retried until it is written: until then, no checkpoint forgets the input that decided it.
        const added = retryUntilDone(() => store.outbox.add(action), {
          stopped: () => closing,
          onError: (err, attempt) => {
            metrics.outboxErrors.inc();
            durable.metrics.outboxRetries.inc();
            if (attempt === 1 || attempt % 10 === 0) {
              logger.error(
                { err, id: action.id, scenario: action.scenario, attempt },
                'action could not be written to the outbox; trying again',
              );
            }
          },
        });
        const write = added.then(
          (result) => {
            for (const dropped of result.dropped) {
              recentActions.dropped(dropped, 'outbox-full');
              metrics.outboxDropped.inc({ scenario: dropped.scenario });
              logger.warn(
                {
                  id: dropped.id,
                  scenario: dropped.scenario,
                  priority: dropped.priority,
                  actor: dropped.actor,
                },
                'outbox full: dropped the lowest-priority, oldest action',
              );
            }
            metrics.outboxDepth.set(store.outbox.size);
            metrics.outboxBytes.set(store.outbox.bytes);
            uplink?.kick();
          },
          (err: unknown) => {
            logger.error(
              { err, id: action.id, scenario: action.scenario },
              'action could not be written to the outbox; the journal still has its input, replayed on the next start',
            );
          },
        );
        // The write itself, which rejects if it was given up: a checkpoint waits for it, and is not taken then.
        pendingWrites.add(added);
        void write.finally(() => pendingWrites.delete(added));
      }
    };

    const timerQueue = new TimerQueue();
    let pipeline: Pipeline | undefined;
    // A timer that fires is an input like an event: recorded with its time, then applied in journal order.
    const timers = new TimerDriver(timerQueue, clock, (key, dueAt) => {
      const actor = pipeline?.timerActor(key);
      const at = Math.max(dueAt, clock.now());
      const cached =
        actor !== undefined ? store.profiles.peek(actor) : { hit: true as const, profile: undefined };
      if (cached.hit) {
        durable.submitTimer(key, at, actor, cached.profile);
        return;
      }
      store.profiles.get(actor ?? '').then(
        (profile) => durable.submitTimer(key, at, actor, profile),
        (err: unknown) => {
          logger.warn({ err, actor }, 'profile read failed; timer fires without the profile');
          durable.submitTimer(key, at, actor, undefined);
        },
      );
    });
    closers.push(() => timers.stop());
    closers.push(() => uplink?.stop());
    const pendingWrites = new Set<Promise<unknown>>();
    closers.push(async () => {
      await Promise.allSettled([...pendingWrites]);
    });

    pipeline = new Pipeline({
      engine,
      arbiter,
      timers,
      clock,
      metrics,
      logger,
      dispatch,
      cachedProfile: (actor) => {
        const cached = store.profiles.peek(actor);
        return cached.hit ? cached.profile : undefined;
      },
      onVerdict: (c: Candidate, s: string | undefined) => {
        recentActions.decided(c.action, s);
        audit.append(auditEntryOf(c.action, clock.now(), s));
        opts.onAction?.(c.action, s);
      },
    });
    const run = pipeline;

    // Rule changes wait for recovery: the journal is replayed through the rules loaded at start.
    let openRulesGate = (): void => undefined;
    const rulesGate = new Promise<void>((resolve) => (openRulesGate = resolve));
    const sync = await startCloudSync({
      gateway: gw,
      store,
      bundles,
      trustedKeys,
      target: {
        get engine() {
          return run.engine;
        },
        get arbiter() {
          return run.arbiter;
        },
        use: (nextEngine, nextArbiter, nextRules) => {
          run.useEngine(nextEngine);
          run.useArbiter(nextArbiter);
          rules = nextRules;
        },
        armTimer: (key, actor, dueAt) => run.armTimer(key, actor, dueAt),
        cancelTimer: (key) => timers.cancel(key),
      },
      engine: { gateway: gw },
      initial: startup.running,
      loadDir: () =>
        loadRulesDir(rulesDir, opts.rulesOverlay !== undefined ? { overlay: opts.rulesOverlay } : {}),
      publish: (topic, payload) => uplink?.publishStatus(topic, payload),
      logger,
      now: () => clock.now(),
      ready: rulesGate,
      // The state now follows the new rules: a checkpoint keeps a restart from replaying the journal before the
      // swap through them. One may be under way with the state from before, hence the second.
      onApplied: () => void durable.checkpoint().then(() => durable.checkpoint()),
    });
    closers.push(() => sync.stop());

    const deadLetter = (record: DeadLetter): void => {
      broker?.publish(DEAD_LETTER_TOPIC, JSON.stringify(record)).catch((err: unknown) => {
        logger.warn({ err }, 'dead letter not published');
      });
    };

    const ingest = new Ingest({
      profiles: store.profiles,
      clock: () => clock.now(),
      logger,
      maxPayloadBytes: config.ingest.maxPayloadBytes,
      deadLetter,
      metrics: {
        accepted: (type, source) =>
          metrics.eventsIn.inc({ type: metrics.eventType(type), source: source ?? 'device' }),
        rejected: (reason) => metrics.ingestRejects.inc({ reason }),
      },
      // Recorded first, processed once recorded (see `durable.recover` for what happens on each event).
      deliver: (ev, profile, meta) =>
        durable.submitEvent(ev, profile, meta && meta.qos > 0 ? 'sync' : 'write', meta?.source),
    });

    const credentials = new CredentialStore(store.sublevels.creds);
    const mqttLimits = config.mqtt;
    const mqttPending = new Gauge({
      name: 'vigil_mqtt_pending_connections',
      help: 'Connections open on the MQTT listeners that have not completed CONNECT',
      registers: [metrics.registry],
    });
    const guard = new DeviceGuard({
      allowAnonymous: mqttLimits.allowAnonymous,
      credentials,
      maxConnections: mqttLimits.maxConnections,
      maxPendingPerAddress: mqttLimits.maxPendingPerAddress,
      connectTimeoutMs: mqttLimits.connectTimeout,
      topics: { maxTopicBytes: mqttLimits.maxTopicBytes, maxTopicLevels: mqttLimits.maxTopicLevels },
      maxSubscriptions: mqttLimits.maxSubscriptions,
      publishRate: {
        perSecond: mqttLimits.publishRate.perSecond,
        burst: mqttLimits.publishRate.burst,
        disconnectAfterMs: mqttLimits.publishRate.disconnectAfter,
      },
      logger,
      counters: {
        authRefused: (reason) => metrics.authRefusals.inc({ reason }),
        aclRefused: (action) => metrics.aclRefusals.inc({ action }),
        limitHit: (limit) => metrics.limitHits.inc({ limit }),
        protocolError: () => metrics.protocolErrors.inc(),
        openConnections: (n) => metrics.mqttConnections.set(n),
        pendingConnections: (n) => mqttPending.set(n),
      },
    });
    for (const [limit, value] of Object.entries({
      'max-connections': mqttLimits.maxConnections,
      'max-pending-per-address': mqttLimits.maxPendingPerAddress,
      'connect-timeout-ms': mqttLimits.connectTimeout,
      'max-packet-bytes': mqttLimits.maxPacketBytes,
      'max-topic-bytes': mqttLimits.maxTopicBytes,
      'max-topic-levels': mqttLimits.maxTopicLevels,
      'max-subscriptions': mqttLimits.maxSubscriptions,
      'publish-rate-per-second': mqttLimits.publishRate.perSecond,
      'publish-rate-burst': mqttLimits.publishRate.burst,
    })) {
      metrics.mqttLimits.set({ limit }, value);
    }

    broker = await startBroker({
      host: config.mqtt.host,
      port: config.mqtt.port,
      maxPacketBytes: config.mqtt.maxPacketBytes,
      logger,
      guard,
      tls: mqttTls && {
        ...mqttTls,
        host: config.mqtt.tls.host ?? config.mqtt.host,
        port: config.mqtt.tls.port,
      },
      hooks: {
        // Acknowledged once recorded (QoS 1); a resend of a recorded publish is acknowledged, not processed.
        onPublish: (client: ClientInfo, topic, payload, qos, packet) => {
          let source: PublishSource | undefined;
          if (qos > 0 && packet.messageId !== undefined) {
            const hash = DurableInputs.hashPublish(topic, payload);
            source = {
              clientId: client.id,
              connection: packet.connection,
              messageId: packet.messageId,
              hash,
            };
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
    const startedBroker = broker;
    // Closers run last-pushed first: stop accepting devices, let queued events finish, then the rest.
    closers.push(() => ingest.drain());
    closers.push(() => startedBroker.close());

    // An action that waited in the outbox past its category's ttl is dropped, not sent late.
    const onExpired = (action: Action, now: number): void => {
      metrics.actionsSuppressed.inc({ scenario: action.scenario, reason: 'ttl' });
      metrics.outboxDepth.set(store.outbox.size);
      metrics.outboxBytes.set(store.outbox.bytes);
      logger.info(
        {
          id: action.id,
          scenario: action.scenario,
          actor: action.actor,
          category: action.category,
          waitedMs: now - action.decidedAt,
        },
        'action dropped: it waited in the outbox past its ttl',
      );
      audit.append(auditEntryOf(action, now, 'ttl'));
      recentActions.dropped(action, 'ttl');
    };

    if (config.upstream.url !== undefined) {
      const topics = upstreamTopics(gw);
      const batch = config.upstream.batch;
      uplink = new Uplink({
        url: config.upstream.url,
        gatewayId: gw,
        clientId: config.upstream.clientId,
        username: config.upstream.username,
        password: config.upstream.password,
        tls: upstreamTls,
        keepaliveMs: config.upstream.keepalive,
        reconnectMs: config.upstream.reconnect,
        inflight: config.upstream.inflight,
        outbox: store.outbox,
        logger,
        policy: rules.policy,
        batch: batch ? { max: batch.max, withinMs: batch.within } : undefined,
        now: () => clock.now(),
        onExpired,
        onSent: () => {
          metrics.upstreamSent.inc();
          metrics.outboxDepth.set(store.outbox.size);
          metrics.outboxBytes.set(store.outbox.bytes);
        },
        onConnectionChange: (up) => metrics.upstreamConnected.set(up ? 1 : 0),
        onMessage: (topic, payload) => {
          if (topic === topics.events) ingest.handleCloudEvent(payload);
          else sync.onMessage(topic, payload);
        },
      });
    }
    metrics.outboxDepth.set(store.outbox.size);

    const housekeeping = setInterval(() => {
      const now = clock.now();
      run.arbiter.prune(now);
      // Expired actions leave the outbox even while the uplink is down, or absent, rather than take room there.
      if (uplink) {
        uplink.expireQueued(now);
        return;
      }
      for (const action of queuedExpired(store.outbox, rules.policy, now)) {
        store.outbox.remove(action.id).catch((err: unknown) => {
          logger.error({ err, id: action.id }, 'outbox remove of an expired action failed');
        });
        onExpired(action, now);
      }
    }, HOUSEKEEPING_EVERY_MS);
    housekeeping.unref();
    closers.push(() => clearInterval(housekeeping));

    const http = new HttpServer(logger);
    if (authorizeHttp) http.requireAuthorization(authorizeHttp, OPEN_PATHS);
    const profiles = profileRoutes(store);
    http
      .route('GET', '/healthz', (_req, res) =>
        sendJson(res, 200, {
          status: durable.state === 'storage-fault' ? 'degraded' : 'ok',
          durability: durable.health(),
          gateway: gw,
          upstream: uplink ? (uplink.connected ? 'connected' : 'disconnected') : 'none',
          outbox: store.outbox.size,
          devices: startedBroker.connectedCount,
          cbor: cborInUse(),
        }),
      )
      .route('GET', '/metrics', async (_req, res) => {
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      })
      .route('POST', '/api/profiles/import', (req, res) => profiles.importNdjson(req, res))
      .route('GET', '/api/profiles/:id', (_req, res, params) => profiles.get(params.id ?? '', res))
      .route('GET', '/api/actions/log', auditLogRoute(audit))
      .route('POST', '/api/rules/apply', (req, res) => sync.routes.apply(req, res))
      .route('GET', '/api/rules', (req, res) => sync.routes.running(req, res));
    // `vigil devices` while the gateway runs; a removed device's connection ends at once.
    const devices = credentialRoutes(credentials, { onRemoved: (id) => guard.disconnect(id) });
    http
      .route('GET', '/api/devices', (_req, res) => devices.list(res))
      .route('PUT', '/api/devices/:id/credential', (req, res, params) =>
        devices.put(params.id ?? '', req, res),
      )
      .route('DELETE', '/api/devices/:id', (_req, res, params) => devices.remove(params.id ?? '', res));
    const dashboard = mountDashboard(http, {
      gatewayId: gw,
      engine: () => run.engine,
      recent: recentActions,
      devices: deviceActivity,
      profile: (id) => store.profiles.get(id),
      outbox: store.outbox,
      uplink: () => (uplink ? (uplink.connected ? 'connected' : 'disconnected') : 'none'),
      connectedClients: () => startedBroker.connectedCount,
      pendingTimers: () => timers.pending,
      metrics,
      dataDir,
      clock,
      logger,
    });
    closers.push(() => dashboard.stop());
    const httpAddress = await http.listen(config.http.host, config.http.port);
    closers.push(() => http.close());

    // Commands that touch the data dir of a running gateway find it here (LevelDB allows one process).
    const marker = join(dataDir, 'gateway.json');
    await writeFile(
      marker,
      JSON.stringify({
        pid: process.pid,
        http: `http://${urlHost(httpAddress.host)}:${httpAddress.port}`,
        ...(config.http.token !== undefined ? { token: config.http.token } : {}),
      }) + '\n',
      { mode: 0o600 },
    );
    // It may hold the API token: readable by the gateway's user only, even if it was there before.
    await chmod(marker, 0o600);
    closers.push(() => rm(marker, { force: true }));

    logger.info({ gateway: gw, data: dataDir, upstream: config.upstream.url ?? null }, 'gateway started');

    // In the background: devices connect and are acknowledged meanwhile; what they send waits in the journal.
    const recovered = durable.recover({
      pipeline: run,
      clock,
      profiles: store.profiles,
      pendingWrites: () => pendingWrites,
      onLiveEvent: (ev) => {
        deviceActivity.observe(ev);
        recorder?.record(ev);
      },
    });
    recovered.catch((err: unknown) =>
      logger.fatal({ err }, 'recovery failed; inputs are recorded but not processed'),
    );
    recovered.then(openRulesGate, openRulesGate);

    let stopping: Promise<void> | undefined;
    return {
      config,
      mqtt: startedBroker.address,
      mqtts: startedBroker.tlsAddress,
      http: httpAddress,
      get rules() {
        return rules;
      },
      sync,
      reloadRules: () => sync.rules.reloadDir(),
      store,
      metrics,
      logger,
      scenarioStats: () => run.engine.stats(),
      recovered,
      stop: () => (stopping ??= closeAll().then(() => logger.info({ gateway: gw }, 'gateway stopped'))),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
