import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { EngineOptions } from '../engine/index.js';
import type { LoadResult, RuleSet } from '../rules/index.js';
import { groupTopics, upstreamTopics } from '../shared/index.js';
import type { Store } from '../store/index.js';
import type { BundleStore } from './bundle-store.js';
import type { KeyRing } from './key-ring.js';
import type { TrustedKey } from './keys.js';
import { ProfileSync, type ProfileBatchRefusal } from './profile-sync.js';
import { RuleSync, type RuleSyncOptions, type RunningRules } from './rule-sync.js';
import type { RulesStatus } from './rules-status.js';
import type { SwapReport, SwapTarget } from '../runtime/index.js';

export interface CloudSyncOptions {
  gateway: string;
  store: Pick<Store, 'profiles' | 'sublevels'>;
  bundles: BundleStore;
  /** The keys bundles are checked against; `keys`, when given, replaces them and follows its key lists. */
  trustedKeys: readonly TrustedKey[];
  /** The trusted keys that signed key lists replace (`vigil/{gw}/keys`, `vigil/groups/{group}/keys`). */
  keys?: KeyRing;
  /** The groups the gateway belongs to: their bundles and key lists are taken too. */
  groups?: readonly string[];
  target: SwapTarget;
  engine: EngineOptions;
  /** The rules in force at start (`chooseStartupRules`). */
  initial: RunningRules;
  /** Reads and compiles the local rules directory (SIGHUP). */
  loadDir: () => Promise<LoadResult>;
  /**
   * Publishes on the upstream broker, QoS 1; dropped when it is not connected (the log keeps the outcome). A
   * retained one is also kept and published again on every connection until replaced.
   */
  publish: (topic: string, payload: string, opts?: { retain: boolean }) => void;
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
  /** Every topic `onMessage` takes: the gateway's rules, profiles and keys, and those of its groups. */
  readonly topics: readonly string[];
  /** Waits for the changes being applied; rule changes still waiting (for recovery) are dropped. */
  stop(): Promise<void>;
}

export async function startCloudSync(opts: CloudSyncOptions): Promise<CloudSync> {
  const topics = upstreamTopics(opts.gateway);
  const { logger } = opts;
  const ring = opts.keys;
  const rules = new RuleSync({
    gateway: opts.gateway,
    trustedKeys: ring ? () => ring.keys : opts.trustedKeys,
    bundles: opts.bundles,
    target: opts.target,
    engine: opts.engine,
    initial: opts.initial,
    loadDir: opts.loadDir,
    // Retained: a console that subscribes later still sees the latest outcome, and the version running.
    publish: (status) => opts.publish(topics.rulesStatus, JSON.stringify(status), { retain: true }),
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
  const groups = (opts.groups ?? []).map((group) => ({ group, ...groupTopics(group) }));
  const keyLists = new Set<string>([topics.keys, ...groups.map((g) => g.keys)]);
  const applyKeys = async (payload: Buffer): Promise<void> => {
    if (!ring) return;
    const status = await ring.apply(payload, opts.gateway, opts.now());
    if (status) opts.publish(topics.keysStatus, JSON.stringify(status), { retain: true });
  };
  return {
    rules,
    profiles,
    topics: [topics.rules, topics.profiles, ...(ring ? [...keyLists] : []), ...groups.map((g) => g.rules)],
    onMessage(topic, payload) {
      // An empty retained message clears the topic on the broker: there is nothing to look at.
      if (topic === topics.rules || groups.some((g) => g.rules === topic)) {
        if (payload.length === 0) return Promise.resolve();
        const group = groups.find((g) => g.rules === topic)?.group;
        return track(rules.applyBundle(payload, 'cloud', group), 'rules bundle');
      }
      if (topic === topics.profiles) return track(profiles.handle(payload), 'profile batch');
      if (ring && keyLists.has(topic)) {
        return payload.length === 0 ? Promise.resolve() : track(applyKeys(payload), 'key list');
      }
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
