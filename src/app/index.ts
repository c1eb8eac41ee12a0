import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import type { ScenarioStats } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';
import type { Clock, JournalStorage, Metrics, RecoveryReport } from '../runtime/index.js';
import type { Action } from '../shared/index.js';
import type { Store } from '../store/index.js';
import type { CloudSync, RulesStatus } from '../sync/index.js';
import { startDecisionLoop } from './decision.js';
import { startDeviceEdge } from './device-edge.js';
import { openFoundation } from './foundation.js';
import { startGatewayApi } from './http-api.js';
import { Modules } from './modules.js';
import { startSync } from './cloud-sync.js';
import { startShadow } from './shadow.js';
import { startUplink } from './uplink.js';

export interface GatewayOptions {
  logger?: Logger;
  clock?: Clock;
  /** The wall clock compared with `clock` for steps (src/runtime/clock.ts); default `Date.now` without `clock`. */
  wallNow?: () => number;
  /** Observers for the dashboard and tests. */
  onAction?: (action: Action, suppressed: string | undefined) => void;
  /** Rule files that replace those of the same name in the rules directory (the demo's short periods). */
  rulesOverlay?: string;
  /** Where the journal and checkpoints are written (tests inject storage faults here); default the filesystem. */
  journalStorage?: JournalStorage;
  /** The build version the health report names; default `unknown`. */
  version?: string;
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

/**
 * Assembles the gateway from its modules (docs/architecture.md), each started with the ones before it and
 * stopped in reverse order, then goes live: the uplink connects and the state is recovered in the background.
 */
export async function startGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  const base = await openFoundation(config, opts);
  const { logger } = base;
  const modules = new Modules(logger);
  modules.onStop('store', () => base.stop());
  try {
    const decision = await modules.start('decision loop', () => startDecisionLoop(base, opts));
    const uplink = await modules.start('uplink', () => startUplink(base, decision));
    const sync = await modules.start('cloud sync', () => startSync(base, decision, uplink, opts.version));
    const shadow = await modules.start('shadow rules', () => startShadow(base, decision, uplink, sync));
    const edge = await modules.start('device edge', () =>
      config.threads === 2
        ? // Loaded only then: the worker, the crossing and the session service are for two threads.
          import('./threaded-edge.js').then((m) => m.startThreadedEdge(base, decision, uplink))
        : startDeviceEdge(base, decision, uplink),
    );
    const http = await modules.start('http api', () =>
      startGatewayApi({ base, decision, uplink, sync, edge, shadow }),
    );

    uplink.connect();
    const { broker } = edge;
    const recovered = decision.recover(
      broker.connectionSteps === undefined ? undefined : () => broker.connectionSteps ?? 0,
    );
    recovered.catch((err: unknown) =>
      logger.fatal({ err }, 'recovery failed; inputs are recorded but not processed'),
    );
    logger.info(
      { gateway: base.gatewayId, data: base.dataDir, upstream: config.upstream.url ?? null },
      'gateway started',
    );
    let stopping: Promise<void> | undefined;
    return {
      config,
      mqtt: edge.broker.address,
      mqtts: edge.broker.tlsAddress,
      http: http.address,
      get rules() {
        return decision.rules.rules;
      },
      sync,
      reloadRules: () => sync.rules.reloadDir(),
      store: base.store,
      metrics: base.metrics,
      logger,
      scenarioStats: () => decision.rules.engine.stats(),
      recovered,
      stop: () =>
        (stopping ??= modules
          .stopAll()
          .then(() => logger.info({ gateway: base.gatewayId }, 'gateway stopped'))),
    };
  } catch (err) {
    await modules.stopAll();
    throw err;
  }
}
