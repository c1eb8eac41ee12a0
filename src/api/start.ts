import type { IncomingMessage } from 'node:http';
import { withoutSecretFields, type CredentialStore } from '../credentials/index.js';
import type { DashboardDeps } from '../dashboard/index.js';
import type { Metrics } from '../runtime/index.js';
import type { AuditLog, Store } from '../store/index.js';
import { ConfigError, listenHint } from '../shared/index.js';
import type { RuleSync } from '../sync/index.js';
import { OPEN_PATHS } from './api-token.js';
import { HttpMetrics } from './http-metrics.js';
import { mountAuditRoutes } from './routes/audit.js';
import { mountDashboard } from './routes/dashboard.js';
import { mountDeviceRoutes } from './routes/devices.js';
import { mountHealthRoutes } from './routes/health.js';
import { mountProfileRoutes } from './routes/profiles.js';
import { mountRulesRoutes } from './routes/rules.js';
import { mountShadowRoutes } from './routes/shadow.js';
import { HttpApi } from './server.js';

/** What the local HTTP API serves from; the gateway passes its parts in. */
export interface HttpApiDeps extends Omit<DashboardDeps, 'profile' | 'countProfiles'> {
  host: string;
  port: number;
  /** The token check (`apiAuthorizer`); undefined when none is needed. */
  authorize: ((req: IncomingMessage) => boolean) | undefined;
  metrics: Metrics;
  store: Pick<Store, 'profiles' | 'sublevels'>;
  audit: Pick<AuditLog, 'list'>;
  credentials: CredentialStore;
  rules: Pick<RuleSync, 'applyBundle' | 'running' | 'inForce'>;
  /** The body of `GET /healthz`. */
  healthz: () => object;
  /** Ends the connection of a device whose credential was removed. */
  disconnectDevice: (id: string) => void;
  /** The shadow rules' report (`GET /api/shadow`); undefined when none runs. */
  shadow?: () => object | undefined;
}

export interface RunningHttpApi {
  readonly address: { host: string; port: number };
  /** Stops listening, ends every connection and live stream. */
  close(): Promise<void>;
}

/** Mounts every route group on one server, behind one error boundary, and listens. */
export async function startHttpApi(deps: HttpApiDeps): Promise<RunningHttpApi> {
  const api = new HttpApi({
    logger: deps.logger,
    metrics: new HttpMetrics(deps.metrics.registry),
    authorize: deps.authorize,
    openPaths: OPEN_PATHS,
  });
  mountHealthRoutes(api, { healthz: deps.healthz, registry: deps.metrics.registry });
  mountProfileRoutes(api, deps.store);
  mountAuditRoutes(api, deps.audit);
  mountRulesRoutes(api, deps.rules);
  mountShadowRoutes(api, deps.shadow ?? (() => undefined));
  // `vigil devices` while the gateway runs; a removed device's connection ends at once.
  mountDeviceRoutes(api, { credentials: deps.credentials, onRemoved: deps.disconnectDevice });
  const dashboard = mountDashboard(api, {
    ...deps,
    rulesInForce: () => deps.rules.inForce,
    // A profile is shown without a field named like a secret, even one stored before they were refused.
    profile: async (id) => {
      const profile = await deps.store.profiles.get(id);
      return profile && withoutSecretFields(profile);
    },
    countProfiles: (where) => deps.store.profiles.count(where),
  });
  let address: { host: string; port: number };
  try {
    address = await api.listen(deps.host, deps.port);
  } catch (err) {
    dashboard.stop();
    throw new ConfigError(`http cannot listen on ${deps.host}:${deps.port}: ${(err as Error).message}`, {
      cause: err,
      hint: listenHint(err, 'http.port (--http-port)', 'http.host (--http-host)'),
    });
  }
  return {
    address,
    close: async () => {
      await api.close();
      dashboard.stop();
    },
  };
}
