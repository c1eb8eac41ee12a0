import type { ServerResponse } from 'node:http';
import {
  DashboardView,
  FIRST_ACTIONS,
  StaticAssets,
  type ActionEntry,
  type DashboardDeps,
} from '../../dashboard/index.js';
import { badQuery, badTarget } from '../errors.js';
import { LiveStream } from '../live-stream.js';
import { sendError, sendJson } from '../respond.js';
import type { HttpApi } from '../server.js';

export interface Dashboard {
  /** Stops the once-a-second tick and the size sampler and ends every live stream. */
  stop(): void;
}

const MAX_ID_CHARS = 256;

/**
 * Mounts the dashboard: the page (`GET /` and `/assets/…`), the JSON API (`/api/scenarios`,
 * `/api/scenarios/{id}`, `/api/devices/{id}`,
 * `/api/devices/{id}/overview` (what a device's page shows), `/api/devices/{id}/explain` (where it stands in
 * every scenario, and why its actions were decided as they were), `/api/actions?limit=N`, `/api/health`, `/api/history?range=R`)
 * and the live stream
 * (`/api/live`, server-sent events, one batch a tick).
 */
export function mountDashboard(api: HttpApi, deps: DashboardDeps): Dashboard {
  const view = new DashboardView(deps);
  const stream = new LiveStream(deps.logger);
  const ticker = startTicker(view, stream, deps);
  mountPage(api, new StaticAssets(deps.logger));
  mountJson(api, view, deps);
  api.route('GET', '/api/live', ({ req, res }) => stream.open(req, res, [['hello', view.hello()]]));
  return {
    stop: () => {
      clearInterval(ticker);
      view.stop();
      stream.close();
    },
  };
}

function startTicker(view: DashboardView, stream: LiveStream, deps: DashboardDeps): NodeJS.Timeout {
  const { recent, logger } = deps;
  // Actions below this seq have gone out on the stream.
  let streamedSeq = recent.nextSeq;
  const tick = (): void => {
    view.step();
    if (stream.size === 0) {
      streamedSeq = recent.nextSeq;
      return;
    }
    // One batch per tick, however many actions were decided: the page costs nothing per event.
    const batch: ActionEntry[] = recent.since(streamedSeq);
    streamedSeq = recent.nextSeq;
    if (batch.length > 0) stream.send('actions', batch);
    stream.send('summary', view.summary());
  };
  const ticker = setInterval(() => {
    try {
      tick();
    } catch (err) {
      logger.error({ err }, 'dashboard update failed');
    }
  }, view.tickMs);
  ticker.unref();
  return ticker;
}

function mountPage(api: HttpApi, assets: StaticAssets): void {
  api
    .route('GET', '/', ({ req, res }) => assets.serve('index.html', req, res))
    .route('GET', '/assets/:name', async ({ req, res, params }) => {
      const name = params['name'] ?? '';
      if (!assets.isAsset(name)) sendError(res, 404, 'VIGIL_NOT_FOUND', `no such dashboard file: ${name}`);
      else await assets.serve(name, req, res);
    });
}

function mountJson(api: HttpApi, view: DashboardView, deps: DashboardDeps): void {
  api
    .route('GET', '/api/scenarios', ({ res }) => sendJson(res, 200, { scenarios: view.rows() }))
    .route('GET', '/api/scenarios/:id', ({ res, params }) => {
      const id = params['id'] ?? '';
      const detail = view.scenario(id);
      if (detail) sendJson(res, 200, detail);
      else sendError(res, 404, 'VIGIL_NOT_FOUND', `no such scenario: ${id}`);
    })
    .route('GET', '/api/devices/:id', async ({ res, params }) => {
      const id = deviceIdOf(params);
      const detail = await view.device(id);
      if (detail) sendJson(res, 200, detail);
      else unknownDevice(res, id);
    })
    .route('GET', '/api/devices/:id/overview', async ({ res, params }) => {
      const id = deviceIdOf(params);
      const overview = await view.overview(id);
      if (overview) sendJson(res, 200, overview);
      else unknownDevice(res, id);
    })
    .route('GET', '/api/devices/:id/explain', async ({ res, params }) => {
      const id = deviceIdOf(params);
      const explained = await view.explain(id);
      if (explained) sendJson(res, 200, explained);
      else unknownDevice(res, id);
    })
    .route('GET', '/api/actions', ({ res, query }) => {
      const limit = parseLimit(query.get('limit'), deps.recent.capacity);
      sendJson(res, 200, { actions: deps.recent.latest(limit) });
    })
    .route('GET', '/api/health', ({ res }) => sendJson(res, 200, view.health()))
    .route('GET', '/api/history', ({ res, query }) => {
      const range = query.get('range') ?? '1h';
      const rangeMs = HISTORY_RANGES[range];
      if (rangeMs === undefined)
        throw badQuery(
          `range is one of ${Object.keys(HISTORY_RANGES).join(', ')}, got ${JSON.stringify(range)}`,
        );
      sendJson(res, 200, { range, ...view.historyOf(rangeMs) });
    });
}

function deviceIdOf(params: Readonly<Record<string, string>>): string {
  const id = params['id'] ?? '';
  if (id.length > MAX_ID_CHARS) throw badTarget(`a device id has 1 to ${MAX_ID_CHARS} characters`);
  return id;
}

function unknownDevice(res: ServerResponse, id: string): void {
  sendError(
    res,
    404,
    'VIGIL_NOT_FOUND',
    `unknown device: ${id} (no profile, not seen since the gateway started)`,
  );
}

/** The ranges `/api/history` answers, as the page offers them. */
const HISTORY_RANGES: Readonly<Record<string, number>> = Object.assign(Object.create(null) as object, {
  '15m': 15 * 60_000,
  '1h': 60 * 60_000,
  '24h': 24 * 60 * 60_000,
});

/** `?limit=N`: the number of entries, at most what the ring holds. */
function parseLimit(raw: string | null, max: number): number {
  if (raw === null) return Math.min(FIRST_ACTIONS, max);
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1)
    throw badQuery(`limit must be a positive integer, got ${JSON.stringify(raw)}`);
  return Math.min(Number(raw), max);
}
