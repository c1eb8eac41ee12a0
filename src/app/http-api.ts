import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HttpServer, mountDashboard, OPEN_PATHS, sendJson } from '../dashboard/index.js';
import { auditLogRoute, cborInUse, credentialRoutes, profileRoutes } from '../store/index.js';
import type { CloudSync } from '../sync/index.js';
import type { DecisionModule } from './decision.js';
import type { DeviceEdge } from './device-edge.js';
import type { Foundation } from './foundation.js';
import type { Started } from './modules.js';
import { watchStorage } from './storage-health.js';
import type { UplinkModule } from './uplink.js';

export interface HttpApi extends Started {
  readonly address: { host: string; port: number };
}

/** What the HTTP API reads and drives: every module started before it. */
export interface HttpApiDeps {
  base: Foundation;
  decision: DecisionModule;
  uplink: UplinkModule;
  sync: CloudSync;
  edge: DeviceEdge;
}

/** The local HTTP API, metrics and dashboard; then `gateway.json`, where CLI commands find the running gateway. */
export async function startHttpApi(deps: HttpApiDeps): Promise<HttpApi> {
  const { base, decision, uplink, sync, edge } = deps;
  const { store, metrics } = base;
  const http = new HttpServer(base.logger);
  if (base.files.authorizeHttp) http.requireAuthorization(base.files.authorizeHttp, OPEN_PATHS);
  const profiles = profileRoutes(store);
  const storage = watchStorage(base, decision.durable);
  http
    .route('GET', '/healthz', (_req, res) => {
      const { degraded, ...disk } = storage();
      sendJson(res, 200, {
        status: degraded ? 'degraded' : 'ok',
        durability: decision.durable.health(),
        ...disk,
        gateway: base.gatewayId,
        upstream: uplink.state(),
        outbox: store.outbox.size,
        devices: edge.broker.connectedCount,
        cbor: cborInUse(),
      });
    })
    .route('GET', '/metrics', async (_req, res) => {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(text);
    })
    .route('POST', '/api/profiles/import', (req, res) => profiles.importNdjson(req, res))
    .route('GET', '/api/profiles/:id', (_req, res, params) => profiles.get(params.id ?? '', res))
    .route('GET', '/api/actions/log', auditLogRoute(base.audit))
    .route('POST', '/api/rules/apply', (req, res) => sync.routes.apply(req, res))
    .route('GET', '/api/rules', (req, res) => sync.routes.running(req, res));
  // `vigil devices` while the gateway runs; a removed device's connection ends at once.
  const devices = credentialRoutes(edge.credentials, { onRemoved: (id) => edge.guard.disconnect(id) });
  http
    .route('GET', '/api/devices', (_req, res) => devices.list(res))
    .route('PUT', '/api/devices/:id/credential', (req, res, params) => devices.put(params.id ?? '', req, res))
    .route('DELETE', '/api/devices/:id', (_req, res, params) => devices.remove(params.id ?? '', res));
  const dashboard = mountDashboard(http, {
    gatewayId: base.gatewayId,
    engine: () => decision.rules.engine,
    recent: decision.recent,
    devices: decision.devices,
    profile: (id) => store.profiles.get(id),
    outbox: store.outbox,
    uplink: () => uplink.state(),
    connectedClients: () => edge.broker.connectedCount,
    pendingTimers: () => decision.loop.scheduler.pending,
    metrics,
    dataDir: base.dataDir,
    clock: decision.clock,
    logger: base.logger,
  });
  let address: { host: string; port: number };
  try {
    address = await http.listen(base.config.http.host, base.config.http.port);
  } catch (err) {
    dashboard.stop();
    throw err;
  }
  const marker = await writeGatewayInfo(base, address);
  return {
    address,
    async stop() {
      await rm(marker, { force: true });
      dashboard.stop();
      await http.close();
    },
  };
}

/** Commands that touch the data dir of a running gateway find it here (LevelDB allows one process). */
async function writeGatewayInfo(base: Foundation, address: { host: string; port: number }): Promise<string> {
  const marker = join(base.dataDir, 'gateway.json');
  const token = base.config.http.token;
  await writeFile(
    marker,
    JSON.stringify({
      pid: process.pid,
      http: `http://${urlHost(address.host)}:${address.port}`,
      ...(token !== undefined ? { token } : {}),
    }) + '\n',
    { mode: 0o600 },
  );
  // It may hold the API token: readable by the gateway's user only, even if it was there before.
  await chmod(marker, 0o600);
  return marker;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
