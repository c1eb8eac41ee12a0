import { statfs } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { Counter, Gauge } from 'prom-client';
import { rulesRecordOf } from '../runtime/index.js';
import { upstreamTopics } from '../shared/index.js';
import { startCloudSync, type CloudSync } from '../sync/index.js';
import { HealthReporter } from '../upstream/index.js';
import type { DecisionModule } from './decision.js';
import type { Foundation } from './foundation.js';
import type { UplinkModule } from './uplink.js';

/**
 * Rules, profiles and trusted keys from the cloud (docs/sync.md): signed bundles (the gateway's and its groups')
 * are swapped into the decision loop, profile batches written to the store, key lists kept; outcomes go back up
 * on the status topics, and the retained health report every `sync.healthEvery`.
 */
export async function startSync(
  base: Foundation,
  decision: DecisionModule,
  uplink: UplinkModule,
  version = 'unknown',
): Promise<CloudSync> {
  const { logger, gatewayId } = base;
  const sync = await startCloudSync({
    gateway: gatewayId,
    store: base.store,
    bundles: decision.bundles,
    trustedKeys: base.files.trustedKeys,
    keys: decision.keys,
    groups: base.config.sync.groups,
    target: decision.loop,
    engine: { gateway: gatewayId },
    initial: decision.running,
    loadDir: () => base.loadDir(),
    publish: (topic, payload, how) => uplink.publishStatus(topic, payload, how),
    logger,
    registry: base.metrics.registry,
    now: () => decision.clock.now(),
    // Recorded in the journal, then swapped when the record is applied: a replay swaps at the same point.
    swap: (rules, from) =>
      decision.durable.submitRules(
        rules,
        rulesRecordOf(rules, from.source, from.version),
        decision.clock.now(),
      ),
    // Rule changes wait for recovery: the journal is replayed through the rules loaded at start.
    ready: decision.recovered.catch(() => undefined),
    // The state now follows the new rules: a checkpoint keeps a restart from replaying the journal before the
    // swap through them. One may be under way with the state from before, hence the second.
    onApplied: () => void decision.durable.checkpoint().then(() => decision.durable.checkpoint()),
  });
  for (const topic of sync.topics) {
    // Acknowledged once stored or applied (or refused for good): what the broker kept is not lost to a crash.
    uplink.route(topic, (payload) => sync.onMessage(topic, payload));
  }
  const health = healthReporter(base, decision, uplink, sync, version);
  health.start(base.config.sync.healthEvery);
  return {
    ...sync,
    async stop() {
      await health.stop();
      await sync.stop();
    },
  };
}

/** The retained `vigil/{gw}/health` report, from the metrics, the outbox and the rules in force. */
function healthReporter(
  base: Foundation,
  decision: DecisionModule,
  uplink: UplinkModule,
  sync: CloudSync,
  version: string,
): HealthReporter {
  const { metrics, store, gatewayId, logger } = base;
  const topic = upstreamTopics(gatewayId).health;
  return new HealthReporter(
    {
      gateway: gatewayId,
      version,
      rules: () => {
        const { source, version: v, hash, group } = sync.rules.running;
        return {
          source,
          version: v,
          ...(hash !== undefined ? { hash } : {}),
          ...(group !== undefined ? { group } : {}),
        };
      },
      totals: async () => ({
        events: await sumOf(metrics.eventsIn),
        actions: await sumOf(metrics.actionsDecided),
      }),
      outbox: () => ({ depth: store.outbox.size, oldestDecidedAt: store.outbox.oldestDecidedAt }),
      devicesConnected: () => sumOf(metrics.devicesConnected),
      diskFreeBytes: async () => {
        const fs = await statfs(base.dataDir);
        return fs.bavail * fs.bsize;
      },
      now: () => decision.clock.now(),
      monotonicMs: () => performance.now(),
    },
    (report) => uplink.publishStatus(topic, JSON.stringify(report), { retain: true }),
    (err) => logger.warn({ err }, 'health report not made; the next one tries again'),
  );
}

async function sumOf(metric: Counter<string> | Gauge<string>): Promise<number> {
  const { values } = await metric.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}
