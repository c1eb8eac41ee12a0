import { resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { readTlsFiles, type TlsMaterial } from '../broker/index.js';
import type { Config } from '../config/index.js';
import { apiAuthorizer } from '../api/index.js';
import { loadRulesDir, shippedRulesDir, type LoadResult, type RuleSet } from '../rules/index.js';
import { Metrics } from '../runtime/index.js';
import { RuleError } from '../shared/index.js';
import { AuditLog, openStore, type Store } from '../store/index.js';
import { readTrustedKeys, type TrustedKey } from '../sync/index.js';
import { readUpstreamTls, type UpstreamTls } from '../upstream/index.js';
import type { Started } from './modules.js';

/** How often a failing audit log write is logged at most. */
const AUDIT_ERROR_LOG_MS = 60_000;

export interface FoundationOptions {
  logger?: Logger | undefined;
  /** Rule files that replace those of the same name in the rules directory (the demo's short periods). */
  rulesOverlay?: string | undefined;
}

/** What every module may use: the configuration as read and checked, the logger, metrics and the store. */
export interface Foundation extends Started {
  readonly config: Config;
  readonly gatewayId: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly dataDir: string;
  /** The rules directory compiled at start (a stored bundle may come ahead of it). */
  readonly dirRules: RuleSet;
  /** Reads and compiles the rules directory again (SIGHUP). */
  loadDir(): Promise<LoadResult>;
  readonly store: Store;
  readonly audit: AuditLog;
  readonly files: {
    mqttTls: TlsMaterial | undefined;
    upstreamTls: UpstreamTls | undefined;
    trustedKeys: readonly TrustedKey[];
    authorizeHttp: ReturnType<typeof apiAuthorizer>;
  };
}

/**
 * Reads and checks everything the configuration names before anything opens (the rules, TLS files, trusted
 * keys, the API token rule), then opens the store and the audit log.
 */
export async function openFoundation(config: Config, opts: FoundationOptions): Promise<Foundation> {
  const logger = opts.logger ?? pino({ level: config.log.level });
  const rulesDir = config.rules ?? shippedRulesDir();
  const loadDir = () =>
    loadRulesDir(rulesDir, opts.rulesOverlay !== undefined ? { overlay: opts.rulesOverlay } : {});
  const loaded = await loadDir();
  if (!loaded.ok) throw new RuleError(loaded.problems);
  logger.info({ dir: rulesDir, scenarios: loaded.rules.scenarios.length }, 'rules loaded');

  // A local API reachable from other machines needs a token, and the TLS files must be readable
  // (docs/security.md).
  const files = {
    authorizeHttp: apiAuthorizer(config.http),
    mqttTls: await readTlsFiles(config.mqtt.tls, 'mqtt.tls'),
    upstreamTls: await readUpstreamTls(config.upstream.tls),
    trustedKeys: await readTrustedKeys(config.sync.trustedKeys),
  };
  if (config.mqtt.allowAnonymous) {
    logger.warn(
      'ANONYMOUS DEVICES ALLOWED (mqtt.allowAnonymous / --allow-anonymous): any client can connect without ' +
        'credentials and publish events as any device. For development only.',
    );
  }

  const dataDir = resolve(config.data);
  const store = await openStore(dataDir, {
    profileCacheSize: config.profiles.cacheSize,
    writeBufferBytes: config.store.writeBuffer,
    blockCacheBytes: config.store.blockCache,
    outbox: {
      maxCount: config.outbox.maxCount,
      maxBytes: config.outbox.maxBytes,
      maxDelivered: config.outbox.maxDelivered,
    },
    logger,
  });
  if (store.outbox.unreadableOnOpen > 0) {
    logger.warn(
      { entries: store.outbox.unreadableOnOpen },
      'outbox entries that cannot be decoded were left on disk and skipped',
    );
  }
  let audit: AuditLog;
  try {
    audit = await AuditLog.open(store.sublevels.audit, { onError: auditErrorLog(logger, () => audit.lost) });
  } catch (err) {
    await store.close();
    throw err;
  }
  const metrics = new Metrics();
  return {
    config,
    gatewayId: config.gatewayId,
    logger,
    metrics,
    dataDir,
    dirRules: loaded.rules,
    loadDir,
    store,
    audit,
    files,
    async stop() {
      await audit.close();
      await store.close();
      metrics.close();
    },
  };
}

/** While the disk is full every audit write fails (each fifth of a second): said once, then every minute. */
function auditErrorLog(logger: Logger, lost: () => number): (err: unknown) => void {
  let lastMs = Number.NEGATIVE_INFINITY;
  return (err) => {
    const now = performance.now();
    if (now - lastMs < AUDIT_ERROR_LOG_MS) return;
    lastMs = now;
    logger.warn({ err, lostSinceStart: lost() }, 'audit log write failed; those entries are lost (counted)');
  };
}
