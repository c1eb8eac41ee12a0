import { rulesRecordOf } from '../runtime/index.js';
import { upstreamTopics } from '../shared/index.js';
import { startCloudSync, type CloudSync } from '../sync/index.js';
import type { DecisionModule } from './decision.js';
import type { Foundation } from './foundation.js';
import type { UplinkModule } from './uplink.js';

/**
 * Rules and profiles from the cloud (docs/sync.md): signed bundles are swapped into the decision loop, profile
 * batches written to the store; outcomes go back up on the status topics.
 */
export async function startSync(
  base: Foundation,
  decision: DecisionModule,
  uplink: UplinkModule,
): Promise<CloudSync> {
  const { logger, gatewayId } = base;
  const sync = await startCloudSync({
    gateway: gatewayId,
    store: base.store,
    bundles: decision.bundles,
    trustedKeys: base.files.trustedKeys,
    target: decision.loop,
    engine: { gateway: gatewayId },
    initial: decision.running,
    loadDir: () => base.loadDir(),
    publish: (topic, payload) => uplink.publishStatus(topic, payload),
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
  const topics = upstreamTopics(gatewayId);
  for (const topic of [topics.rules, topics.profiles]) {
    // Acknowledged once stored or applied (or refused for good): what the broker kept is not lost to a crash.
    uplink.route(topic, (payload) => sync.onMessage(topic, payload));
  }
  return sync;
}
