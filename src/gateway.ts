import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { Arbiter } from './actions/index.js';
import { startBroker, type Broker, type ClientInfo } from './broker/index.js';
import type { Config } from './config/index.js';
import { HttpServer, sendJson } from './dashboard/index.js';
import { Engine, TimerQueue } from './engine/index.js';
import { Ingest, type DeadLetter } from './ingest/index.js';
import { loadRulesDir, shippedRulesDir, type RuleSet } from './rules/index.js';
import { Metrics, monotonicClock, Pipeline, Recorder, TimerDriver, type Clock } from './runtime/index.js';
import { RuleError, type Action, type Candidate } from './shared/index.js';
import { cborInUse, openStore, profileRoutes, type Store } from './store/index.js';
import { Uplink, upstreamTopics } from './upstream/index.js';

/** Local topic where refused publishes are reported, with the reason. */
export const DEAD_LETTER_TOPIC = 'vigil/deadletter';

export interface GatewayOptions {
  logger?: Logger;
  clock?: Clock;
  /** Observers for the dashboard and tests. */
  onAction?: (action: Action, suppressed: string | undefined) => void;
}

export interface Gateway {
  readonly config: Config;
  readonly mqtt: { host: string; port: number };
  readonly http: { host: string; port: number };
  readonly rules: RuleSet;
  readonly store: Store;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Stops accepting, finishes in-flight work, closes the store. Idempotent. */
  stop(): Promise<void>;
}

/** Wires the stages of DESIGN.md's data flow together and starts them. */
export async function startGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? pino({ level: config.log.level });
  const clock = opts.clock ?? monotonicClock();
  const metrics = new Metrics();
  const gw = config.gatewayId;

  const rulesDir = config.rules ?? shippedRulesDir();
  const loaded = await loadRulesDir(rulesDir);
  if (!loaded.ok) throw new RuleError(loaded.problems);
  const rules = loaded.rules;
  logger.info({ dir: rulesDir, scenarios: rules.scenarios.length }, 'rules loaded');

  const dataDir = resolve(config.data);
  const store = await openStore(dataDir, { profileCacheSize: config.profiles.cacheSize });
  const closers: Array<() => Promise<void> | void> = [() => store.close()];
  const closeAll = async () => {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (err) {
        logger.error({ err }, 'error during shutdown');
      }
    }
  };

  try {
    const recorder = config.record !== undefined ? new Recorder(config.record, logger) : undefined;
    if (recorder) closers.push(() => recorder.close());

    const engine = new Engine(rules, { gateway: gw });
    const arbiter = new Arbiter(rules.policy);
    let broker: Broker | undefined;
    let uplink: Uplink | undefined;

    const dispatch = (candidate: Candidate): void => {
      const { action, to } = candidate;
      if (to.includes('device') && broker) {
        metrics.commandsSent.inc();
        broker
          .publish(`devices/${action.actor}/commands/${action.action}`, JSON.stringify(action))
          .catch((err: unknown) => {
            logger.warn({ err, actor: action.actor, action: action.action }, 'device command not published');
          });
      }
      if (to.includes('upstream')) {
        const write = store.outbox.add(action).then(
          (result) => {
            for (const dropped of result.dropped) {
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
            metrics.outboxErrors.inc();
            logger.error(
              { err, id: action.id, scenario: action.scenario },
              'action could not be written to the outbox',
            );
          },
        );
        pendingWrites.add(write);
        void write.finally(() => pendingWrites.delete(write));
      }
    };

    const timerQueue = new TimerQueue();
    let pipeline: Pipeline | undefined;
    const timers = new TimerDriver(timerQueue, clock, (key, dueAt) => {
      const actor = pipeline?.timerActor(key);
      const cached =
        actor !== undefined ? store.profiles.peek(actor) : { hit: true as const, profile: undefined };
      if (cached.hit) {
        pipeline?.onTimer(key, Math.max(dueAt, clock.now()), cached.profile);
        return;
      }
      store.profiles.get(actor ?? '').then(
        (profile) => pipeline?.onTimer(key, Math.max(dueAt, clock.now()), profile),
        (err: unknown) => {
          logger.warn({ err, actor }, 'profile read failed; timer fires without the profile');
          pipeline?.onTimer(key, Math.max(dueAt, clock.now()), undefined);
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
      ...(opts.onAction
        ? { onVerdict: (c: Candidate, s: string | undefined) => opts.onAction?.(c.action, s) }
        : {}),
    });
    const run = pipeline;

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
      deliver: (ev, profile) => {
        recorder?.record(ev);
        run.onEvent(ev, profile);
      },
    });

    broker = await startBroker({
      host: config.mqtt.host,
      port: config.mqtt.port,
      maxPacketBytes: config.mqtt.maxPacketBytes,
      logger,
      hooks: {
        onPublish: (client: ClientInfo, topic, payload, qos) =>
          ingest.handleDevicePublish(client, topic, payload, qos),
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

    if (config.upstream.url !== undefined) {
      const topics = upstreamTopics(gw);
      uplink = new Uplink({
        url: config.upstream.url,
        gatewayId: gw,
        clientId: config.upstream.clientId,
        username: config.upstream.username,
        password: config.upstream.password,
        keepaliveMs: config.upstream.keepalive,
        reconnectMs: config.upstream.reconnect,
        inflight: config.upstream.inflight,
        outbox: store.outbox,
        logger,
        onSent: () => {
          metrics.upstreamSent.inc();
          metrics.outboxDepth.set(store.outbox.size);
          metrics.outboxBytes.set(store.outbox.bytes);
        },
        onConnectionChange: (up) => metrics.upstreamConnected.set(up ? 1 : 0),
        onMessage: (topic, payload) => {
          if (topic === topics.events) ingest.handleCloudEvent(payload);
        },
      });
    }
    metrics.outboxDepth.set(store.outbox.size);

    const http = new HttpServer(logger);
    const profiles = profileRoutes(store);
    http
      .route('GET', '/healthz', (_req, res) =>
        sendJson(res, 200, {
          status: 'ok',
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
      .route('GET', '/api/profiles/:id', (_req, res, params) => profiles.get(params.id ?? '', res));
    const httpAddress = await http.listen(config.http.host, config.http.port);
    closers.push(() => http.close());

    // Commands that touch the data dir of a running gateway find it here (LevelDB allows one process).
    const marker = join(dataDir, 'gateway.json');
    await writeFile(
      marker,
      JSON.stringify({ pid: process.pid, http: `http://${urlHost(httpAddress.host)}:${httpAddress.port}` }) +
        '\n',
    );
    closers.push(() => rm(marker, { force: true }));

    logger.info({ gateway: gw, data: dataDir, upstream: config.upstream.url ?? null }, 'gateway started');

    let stopping: Promise<void> | undefined;
    return {
      config,
      mqtt: startedBroker.address,
      http: httpAddress,
      rules,
      store,
      metrics,
      logger,
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
