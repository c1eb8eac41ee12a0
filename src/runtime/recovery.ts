import type { Logger } from 'pino';
import { Engine, kindOf, type EngineOptions, type EngineState } from '../engine/index.js';
import type { RuleSet, Scenario } from '../rules/index.js';
import type { Event, Profile } from '../shared/index.js';
import type { Clock } from './clock.js';

/** What became of each scenario's saved state when the rules were loaded. */
export interface RuleChanges {
  kept: string[];
  /** Same id, different definition: its state and timers were dropped. */
  changed: string[];
  /** No longer in the rules: its state and timers were dropped. */
  removed: string[];
  /** Not in the checkpoint: it starts empty (an `absent` one is armed from last-seen times). */
  added: string[];
}

/**
 * The engine for `rules`, continuing from `saved`: unchanged scenarios keep their state, changed and removed
 * ones lose it, and the log says which and how much. `owned`: nothing else holds `saved`, so its groups are
 * taken as they are rather than copied (see `Engine.adopt`).
 */
export function restoreEngine(
  rules: RuleSet,
  opts: EngineOptions,
  saved: EngineState | undefined,
  logger: Logger,
  owned = false,
): { engine: Engine; changes: RuleChanges } {
  const changes: RuleChanges = { kept: [], changed: [], removed: [], added: [] };
  if (saved === undefined) {
    changes.added = rules.scenarios.map((sc) => sc.id);
    return { engine: new Engine(rules, opts), changes };
  }
  const current = new Map(rules.scenarios.map((sc) => [sc.id, sc]));
  const savedIds = new Set<string>();
  for (const s of saved.scenarios) {
    savedIds.add(s.id);
    const sc = current.get(s.id);
    const timers = s.groups.filter(([, st]) => (st as { dueAt?: number }).dueAt !== undefined).length;
    if (sc === undefined) {
      changes.removed.push(s.id);
      logger.info(
        { scenario: s.id, groups: s.groups.length, timers },
        'scenario removed from the rules: its state and timers are dropped',
      );
    } else if (sc.fingerprint !== s.fingerprint) {
      changes.changed.push(s.id);
      logger.info(
        { scenario: s.id, groups: s.groups.length, timers },
        'scenario changed since the checkpoint: its state and timers are dropped and it starts afresh',
      );
    } else {
      changes.kept.push(s.id);
    }
  }
  for (const sc of rules.scenarios) if (!savedIds.has(sc.id)) changes.added.push(sc.id);
  if (changes.added.length > 0)
    logger.info({ scenarios: changes.added }, 'scenarios new since the checkpoint');
  return { engine: owned ? Engine.adopt(rules, opts, saved) : Engine.restore(rules, opts, saved), changes };
}

/**
 * New or changed `absent` scenarios start from each device's last-seen time rather than from nothing, so
 * editing `for: 5m` does not forget devices that are already silent. Devices the scenario already holds a
 * group for (it saw them during replay) are left as they are. Returns the engine to continue with (the same
 * one when there was nothing to arm) and how many groups were armed.
 */
export function armFromLastSeen(
  engine: Engine,
  rules: RuleSet,
  opts: EngineOptions,
  scenarioIds: readonly string[],
  lastSeen: ReadonlyMap<string, number>,
  profileOf: (actor: string) => Profile | undefined,
): { engine: Engine; armed: number } {
  const ids = new Set(scenarioIds);
  // The scenarios whose kind arms from a device's last sign of life (`absent`), with the event standing for it.
  const armable = rules.scenarios.flatMap((sc) => {
    const type = ids.has(sc.id) ? kindOf(sc.when).lastSeenEvent?.(sc.when) : undefined;
    return type === undefined ? [] : [{ sc, type }];
  });
  if (armable.length === 0 || lastSeen.size === 0) return { engine, armed: 0 };
  // A scratch engine of those scenarios only: each device's last-seen time goes in as an event of the
  // awaited type, and whatever groups that arms are merged into the live state.
  const scratch = new Engine({ scenarios: armable.map((a) => a.sc), files: [] }, opts);
  const seen = [...lastSeen].sort((a, b) => a[1] - b[1]);
  for (const { type } of armable) {
    for (const [actor, at] of seen) {
      const ev: Event = { actor, type, at, data: {}, source: 'device' };
      scratch.onEvent(ev, profileOf(actor));
    }
  }
  const merged: EngineState = engine.snapshot();
  const armedState = scratch.snapshot();
  let armed = 0;
  for (const fresh of armedState.scenarios) {
    const live = merged.scenarios.find((s) => s.id === fresh.id);
    if (live === undefined) continue;
    const present = new Set(live.groups.map(([group]) => group));
    for (const entry of fresh.groups) {
      if (present.has(entry[0])) continue;
      live.groups.push(entry);
      armed++;
    }
  }
  if (armed === 0) return { engine, armed };
  // `merged` is a snapshot of its own: its groups move in as they are.
  return { engine: Engine.adopt(rules, opts, merged), armed };
}

/**
 * How long a timer whose deadline passed while the gateway was down waits once it is back: the scenario's own
 * period (the device had that long to speak, and may have while nobody listened), at most `maxGraceMs`.
 */
export function graceMs(sc: Scenario | undefined, maxGraceMs: number): number {
  if (sc === undefined) return maxGraceMs;
  const periodMs = kindOf(sc.when).timerPeriodMs?.(sc.when) ?? sc.horizonMs;
  return Math.max(0, Math.min(periodMs, maxGraceMs));
}

/**
 * A clock that does not run behind `floorMs`, the latest time the journal and the checkpoint know of: after a
 * restart on a gateway without a hardware clock, the wall clock may start in the past until NTP steps it, and
 * timers would then wait out the difference.
 */
export function clockNotBefore(base: Clock, floorMs: number, logger: Logger): Clock {
  const behindMs = floorMs - base.now();
  if (behindMs <= 0) return base;
  logger.warn(
    { behindMs, lastRecordedAt: new Date(floorMs).toISOString() },
    'the clock is behind the last recorded time; gateway time carries on from there',
  );
  return { now: () => base.now() + behindMs };
}
