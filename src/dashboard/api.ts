import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { EngineState, PendingTimer, ScenarioStats } from '../engine/index.js';
import type { Scenario } from '../rules/index.js';
import type { Clock, Metrics } from '../runtime/index.js';
import type { Profile } from '../shared/index.js';
import type { DeviceActivity } from './device-activity.js';
import { openMatchesOf, timersOf } from './device-state.js';
import { DirSizeSampler } from './dir-size.js';
import { sendJson, type HttpServer } from './http-server.js';
import { LiveStream } from './live-stream.js';
import type { ActionEntry, RecentActions } from './recent-actions.js';
import { describeScenario } from './scenario-diagram.js';
import { ScenarioRates } from './scenario-rates.js';
import { StaticAssets } from './static-assets.js';

/** What the dashboard reads of the engine; `Engine` provides it. */
export interface EngineView {
  readonly scenarios: readonly Scenario[];
  stats(): ScenarioStats[];
  pendingTimers(): PendingTimer[];
  /** Read for one device's open matches, on request only: it copies the engine's whole state. */
  snapshot(): EngineState;
}

export type UplinkState = 'connected' | 'disconnected' | 'none';

/** Everything the dashboard reads. It only reads: nothing here changes what the gateway decides. */
export interface DashboardDeps {
  gatewayId: string;
  /** The running engine; a function, since new rules bring a new engine. */
  engine: () => EngineView;
  /** Fed by the gateway with every verdict and every action dropped unsent. */
  recent: RecentActions;
  /** Fed by the gateway with every accepted event. */
  devices: DeviceActivity;
  profile: (id: string) => Promise<Profile | undefined>;
  outbox: { readonly size: number; readonly bytes: number };
  uplink: () => UplinkState;
  /** MQTT clients connected to the embedded broker. */
  connectedClients: () => number;
  /** Timers the runtime holds for the engine. */
  pendingTimers: () => number;
  metrics: Metrics;
  /** The data directory, whose size is sampled for `vigil_leveldb_bytes`. */
  dataDir: string;
  clock: Clock;
  logger: Logger;
  /** How often the page's summary and action batches go out (and the rate charts take a step). */
  tickMs?: number;
  dirSizeEveryMs?: number;
}

export interface Dashboard {
  /** Stops the once-a-second tick and the size sampler and ends every live stream. */
  stop(): void;
}

/** Actions a page starts from, and the default of `/api/actions`. */
const FIRST_ACTIONS = 50;
/** Rate charts show this many steps; `perMinute` sums the last 60 s. */
const RATE_SLOTS = 600;
const MAX_ID_CHARS = 256;

/** A scenario row of `/api/scenarios` and of the page. */
export interface ScenarioRow {
  id: string;
  description: string;
  priority: number;
  category: string;
  kind: Scenario['when']['kind'];
  action: string | null;
  to: readonly string[];
  evaluations: number;
  detections: number;
  errors: number;
  /** Groups (usually devices) the scenario holds state for. */
  groups: number;
  sent: number;
  suppressed: number;
  dropped: number;
  /** Suppressed and dropped, by reason. */
  reasons: Record<string, number>;
  lastFiredAt: number | null;
  /** Detections over the last minute. */
  perMinute: number;
}

/** The once-a-second message of the live stream; also the body of `/api/health` in part. */
export interface Summary {
  at: number;
  gateway: string;
  upstream: UplinkState;
  outbox: { depth: number; bytes: number };
  devices: { connected: number; online: number; offline: number; known: number };
  pendingTimers: number;
  /** Suppressed and dropped actions of every scenario, by reason. */
  reasons: Record<string, number>;
  scenarios: ScenarioRow[];
  /** Detections per scenario in the step just taken: the next point of each rate chart. */
  step: Record<string, number>;
}

/**
 * Mounts the dashboard on the gateway's HTTP server: the page (`GET /` and `/assets/…`), the JSON API
 * (`/api/scenarios`, `/api/scenarios/{id}`, `/api/devices/{id}`, `/api/actions?limit=N`, `/api/health`)
 * and the live stream (`/api/live`, server-sent events). Also points the scrape-time metrics at their
 * sources and starts sampling the data directory's size.
 */
export function mountDashboard(http: HttpServer, deps: DashboardDeps): Dashboard {
  const { recent, devices, logger } = deps;
  const tickMs = deps.tickMs ?? 1_000;
  const startedAt = deps.clock.now();
  const rates = new ScenarioRates(tickMs, RATE_SLOTS);
  const stream = new LiveStream(logger);
  const assets = new StaticAssets(logger);
  const perMinuteSteps = Math.max(1, Math.round(60_000 / tickMs));
  let lastStep: Record<string, number> = {};
  // Actions below this seq have gone out on the stream.
  let streamedSeq = recent.nextSeq;

  deps.metrics.readFrom({
    scenarioTotals: () => deps.engine().stats(),
    devices: () => devices.counts(),
  });
  const sampler = new DirSizeSampler(
    deps.dataDir,
    (bytes) => deps.metrics.storeBytes.set(bytes),
    logger,
    deps.dirSizeEveryMs,
  );
  sampler.start();

  const rows = (): ScenarioRow[] => {
    const engine = deps.engine();
    const stats = new Map(engine.stats().map((s) => [s.scenario, s]));
    return engine.scenarios.map((sc) => {
      const s = stats.get(sc.id);
      const tally = recent.tally(sc.id);
      return {
        id: sc.id,
        description: sc.description,
        priority: sc.priority,
        category: sc.category,
        kind: sc.when.kind,
        action: sc.action ?? null,
        to: sc.to,
        evaluations: s?.evaluations ?? 0,
        detections: s?.matches ?? 0,
        errors: s?.errors ?? 0,
        groups: s?.groups ?? 0,
        sent: tally.sent,
        suppressed: tally.suppressed,
        dropped: tally.dropped,
        reasons: tally.reasons,
        lastFiredAt: s?.lastFiredAt ?? null,
        perMinute: rates.recent(sc.id, perMinuteSteps),
      };
    });
  };

  const summary = (): Summary => {
    const counts = devices.counts();
    return {
      at: deps.clock.now(),
      gateway: deps.gatewayId,
      upstream: deps.uplink(),
      outbox: { depth: deps.outbox.size, bytes: deps.outbox.bytes },
      devices: {
        connected: deps.connectedClients(),
        online: counts.online,
        offline: counts.offline,
        known: counts.known,
      },
      pendingTimers: deps.pendingTimers(),
      reasons: recent.reasonTotals(),
      scenarios: rows(),
      step: lastStep,
    };
  };

  const tick = (): void => {
    const steps = rates.sample(deps.clock.now(), deps.engine().stats());
    lastStep = Object.fromEntries(steps.map((s) => [s.scenario, s.matches]));
    if (stream.size === 0) {
      streamedSeq = recent.nextSeq;
      return;
    }
    // One batch per tick, however many actions were decided: the page costs nothing per event.
    const batch: ActionEntry[] = recent.since(streamedSeq);
    streamedSeq = recent.nextSeq;
    if (batch.length > 0) stream.send('actions', batch);
    stream.send('summary', summary());
  };
  const ticker = setInterval(() => {
    try {
      tick();
    } catch (err) {
      logger.error({ err }, 'dashboard update failed');
    }
  }, tickMs);
  ticker.unref();

  http
    .route('GET', '/', (req, res) => assets.serve('index.html', req, res))
    .route('GET', '/assets/:name', async (req, res, params) => {
      const name = params.name ?? '';
      if (!assets.isAsset(name)) sendJson(res, 404, { error: `no such dashboard file: ${name}` });
      else await assets.serve(name, req, res);
    })
    .route('GET', '/api/scenarios', (_req, res) => sendJson(res, 200, { scenarios: rows() }))
    .route('GET', '/api/scenarios/:id', (_req, res, params) => {
      const id = params.id ?? '';
      const sc = deps.engine().scenarios.find((s) => s.id === id);
      const row = rows().find((r) => r.id === id);
      if (!sc || !row) {
        sendJson(res, 404, { error: `no such scenario: ${id}` });
        return;
      }
      sendJson(res, 200, {
        ...row,
        file: sc.file,
        line: sc.line,
        diagram: describeScenario(sc),
        series: { stepMs: tickMs, detections: rates.history().matches[sc.id] ?? [] },
      });
    })
    .route('GET', '/api/devices/:id', async (_req, res, params) => {
      const id = params.id ?? '';
      if (id.length === 0 || id.length > MAX_ID_CHARS) {
        sendJson(res, 400, { error: `a device id has 1 to ${MAX_ID_CHARS} characters` });
        return;
      }
      const profile = await deps.profile(id);
      const engine = deps.engine();
      const matches = openMatchesOf(id, engine.scenarios, engine.snapshot());
      const timers = timersOf(id, engine.pendingTimers());
      const lastSeenAt = devices.lastSeenAt(id) ?? null;
      const connected = devices.isConnected(id);
      if (!profile && lastSeenAt === null && !connected && matches.length === 0 && timers.length === 0) {
        sendJson(res, 404, {
          error: `unknown device: ${id} (no profile, not seen since the gateway started)`,
        });
        return;
      }
      sendJson(res, 200, {
        id,
        profile: profile ?? null,
        lastSeenAt,
        connected,
        online: devices.isOnline(id),
        matches,
        timers,
      });
    })
    .route('GET', '/api/actions', (req, res) => {
      const limit = parseLimit(req, recent.capacity);
      if (typeof limit === 'string') {
        sendJson(res, 400, { error: limit });
        return;
      }
      sendJson(res, 200, { actions: recent.latest(limit) });
    })
    .route('GET', '/api/health', (_req, res) => {
      const s = summary();
      sendJson(res, 200, {
        // Working offline is normal for a gateway: a down uplink degrades it, the outbox keeps the actions.
        status: s.upstream === 'disconnected' ? 'degraded' : 'ok',
        gateway: s.gateway,
        uptimeS: Math.round((s.at - startedAt) / 1000),
        upstream: s.upstream,
        outbox: s.outbox,
        devices: s.devices,
        pendingTimers: s.pendingTimers,
        scenarios: s.scenarios.length,
        dataBytes: sampler.bytes ?? null,
      });
    })
    .route('GET', '/api/live', (req, res) => {
      stream.open(req, res, [
        [
          'hello',
          {
            history: rates.history(),
            actions: recent.latest(FIRST_ACTIONS).reverse(),
            summary: summary(),
          },
        ],
      ]);
    });

  return {
    stop: () => {
      clearInterval(ticker);
      sampler.stop();
      stream.close();
    },
  };
}

/** `?limit=N`: the number of entries, at most what the ring holds; an error message when it is not a number. */
function parseLimit(req: IncomingMessage, max: number): number | string {
  const raw = new URL(req.url ?? '/', 'http://localhost').searchParams.get('limit');
  if (raw === null) return Math.min(FIRST_ACTIONS, max);
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1)
    return `limit must be a positive integer, got ${JSON.stringify(raw)}`;
  return Math.min(Number(raw), max);
}
