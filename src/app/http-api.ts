import { chmod, rm, writeFile } from 'node:fs/promises';
import { gatewayInfoPath, startHttpApi } from '../api/index.js';
import { cborInUse } from '../store/index.js';
import type { CloudSync } from '../sync/index.js';
import type { DecisionModule } from './decision.js';
import type { DeviceEdge } from './device-edge.js';
import type { Foundation } from './foundation.js';
import type { Started } from './modules.js';
import { watchStorage } from './storage-health.js';
import type { ShadowModule } from './shadow.js';
import type { UplinkModule } from './uplink.js';

export interface HttpApiModule extends Started {
  readonly address: { host: string; port: number };
}

/** What the HTTP API reads and drives: every module started before it. */
export interface HttpApiModuleDeps {
  base: Foundation;
  decision: DecisionModule;
  uplink: UplinkModule;
  sync: CloudSync;
  edge: DeviceEdge;
  shadow?: ShadowModule;
}

/** The local HTTP API, metrics and dashboard; then `gateway.json`, where CLI commands find the running gateway. */
export async function startGatewayApi(deps: HttpApiModuleDeps): Promise<HttpApiModule> {
  const { base, decision, uplink, sync, edge } = deps;
  const { store } = base;
  const storage = watchStorage(base, decision.durable);
  const api = await startHttpApi({
    host: base.config.http.host,
    port: base.config.http.port,
    authorize: base.files.authorizeHttp,
    gatewayId: base.gatewayId,
    store,
    audit: base.audit,
    credentials: edge.credentials,
    rules: sync.rules,
    shadow: () => deps.shadow?.shadow.report(),
    disconnectDevice: (id) => edge.guard.disconnect(id),
    healthz: () => {
      const { degraded, ...disk } = storage();
      return {
        status: degraded ? 'degraded' : 'ok',
        durability: decision.durable.health(),
        ...disk,
        gateway: base.gatewayId,
        upstream: uplink.state(),
        outbox: store.outbox.size,
        devices: edge.broker.connectedCount,
        cbor: cborInUse(),
      };
    },
    engine: () => decision.rules.engine,
    policy: () => decision.rules.rules.policy,
    recent: decision.recent,
    devices: decision.devices,
    outbox: store.outbox,
    uplink: () => uplink.state(),
    connectedClients: () => edge.broker.connectedCount,
    pendingTimers: () => decision.loop.scheduler.pending,
    metrics: base.metrics,
    dataDir: base.dataDir,
    clock: decision.clock,
    wallOffsetMs: () => decision.loop.wall.syncedOffsetMs,
    logger: base.logger,
  });
  let marker: string;
  try {
    marker = await writeGatewayInfo(base, api.address);
  } catch (err) {
    await api.close();
    throw err;
  }
  return {
    address: api.address,
    async stop() {
      await rm(marker, { force: true });
      await api.close();
    },
  };
}

/** Commands that touch the data dir of a running gateway find it here (LevelDB allows one process). */
async function writeGatewayInfo(base: Foundation, address: { host: string; port: number }): Promise<string> {
  const marker = gatewayInfoPath(base.dataDir);
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
