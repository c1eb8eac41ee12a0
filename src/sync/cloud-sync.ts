import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { EngineOptions } from '../engine/index.js';
import type { LoadResult, RuleSet } from '../rules/index.js';
import { upstreamTopics } from '../shared/index.js';
import type { Store } from '../store/index.js';
import type { BundleStore } from './bundle-store.js';
import type { TrustedKey } from './keys.js';
import { ProfileSync, type ProfileBatchRefusal } from './profile-sync.js';
import { RuleSync, type RuleSyncOptions, type RunningRules } from './rule-sync.js';
import type { RulesStatus } from './rules-status.js';
import type { SwapReport, SwapTarget } from '../runtime/index.js';

export interface CloudSyncOptions {
  gateway: string;
  store: Pick<Store, 'profiles' | 'sublevels'>;
  bundles: BundleStore;
  trustedKeys: readonly TrustedKey[];
  target: SwapTarget;
  engine: EngineOptions;
  /** The rules in force at start (`chooseStartupRules`). */
  initial: RunningRules;
  /** Reads and compiles the local rules directory (SIGHUP). */
  loadDir: () => Promise<LoadResult>;
  /** Publishes on the upstream broker, QoS 1; dropped when it is not connected (the log keeps the outcome). */
  publish: (topic: string, payload: string) => void;
  logger: Logger;
  now: () => number;
  onApplied?: (report: SwapReport, rules: RuleSet, status: RulesStatus) => void;
  /** How a swap is carried out (recorded in the journal first); default at once. */
  swap?: RuleSyncOptions['swap'];
  /** Rule changes wait for this (recovery); profile batches do not. */
  ready?: Promise<unknown>;
  /** Where refused profile batches are counted (`vigil_profile_batches_refused_total`). */
  registry?: Registry;
}

/** Rules and profiles from the cloud, wired: what the gateway hands messages to. */
export interface CloudSync {
  readonly rules: RuleSync;
  readonly profiles: ProfileSync;
  /**
   * A message from the uplink: a promise that resolves once it is applied or refused for good (the uplink
   * acknowledges it then) and rejects when the gateway stopped first; undefined when the topic is not sync's.
   */
  onMessage(topic: string, payload: Buffer): Promise<void> | undefined;
  /** Waits for the changes being applied; rule changes still waiting (for recovery) are dropped. */
  stop(): Promise<void>;
}

export async function startCloudSync(opts: CloudSyncOptions): Promise<CloudSync> {
  const topics = upstreamTopics(opts.gateway);
  const { logger } = opts;
  const rules = new RuleSync({
    gateway: opts.gateway,
    trustedKeys: opts.trustedKeys,
    bundles: opts.bundles,
    target: opts.target,
    engine: opts.engine,
    initial: opts.initial,
    loadDir: opts.loadDir,
    publish: (status) => opts.publish(topics.rulesStatus, JSON.stringify(status)),
    logger,
    now: opts.now,
    ...(opts.onApplied ? { onApplied: opts.onApplied } : {}),
    ...(opts.swap ? { swap: opts.swap } : {}),
    ...(opts.ready ? { ready: opts.ready } : {}),
  });
  const profiles = await ProfileSync.open({
    gateway: opts.gateway,
    profiles: opts.store.profiles,
    state: opts.store.sublevels.state,
    publish: (status) => opts.publish(topics.profilesStatus, JSON.stringify(status)),
    logger,
    now: opts.now,
    ...(opts.registry ? { refused: profileRefusalCounter(opts.registry) } : {}),
  });
  const pending = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>, what: string): Promise<void> => {
    const settled = work.then(
      () => undefined,
      (err: unknown) => logger.warn({ err }, `${what} not applied`),
    );
    pending.add(settled);
    void settled.finally(() => pending.delete(settled));
    return work.then(() => undefined);
  };
  return {
    rules,
    profiles,
    onMessage(topic, payload) {
      if (topic === topics.rules) {
        // An empty retained message clears the topic on the broker: there is no bundle to look at.
        return payload.length > 0
          ? track(rules.applyBundle(payload, 'cloud'), 'rules bundle')
          : Promise.resolve();
      }
      if (topic === topics.profiles) return track(profiles.handle(payload), 'profile batch');
      return undefined;
    },
    async stop() {
      await rules.stop();
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  };
}

function profileRefusalCounter(registry: Registry): (reason: ProfileBatchRefusal) => void {
  const counter = new Counter({
    name: 'vigil_profile_batches_refused_total',
    help: 'Profile batches from the cloud refused, by reason: too-large, too-many-changes, invalid, gap, store-failed',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of ['too-large', 'too-many-changes', 'invalid', 'gap', 'store-failed']) {
    counter.inc({ reason }, 0);
  }
  return (reason) => counter.inc({ reason });
}
