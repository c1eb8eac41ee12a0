import { Engine, type EngineOptions, type ScenarioStats } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';
import type { RulesInForce } from './rules-in-force.js';

/**
 * What a swap needs of the running gateway. The engine is synchronous: `swapRules` runs in one go
 * between two inputs, so every event is decided by the old rules or by the new, never both or neither.
 */
export interface SwapTarget {
  /** The rules in force, with the engine the next input would go through and the arbiter. */
  readonly rules: RulesInForce;
  /** Arms (or moves) a real timer for a timer the engine's state waits on. */
  armTimer(key: string, actor: string, dueAt: number): void;
  cancelTimer(key: string): void;
}

/** What became of each scenario. */
export interface SwapReport {
  /** Same id and definition: state, counters and timers carried over. */
  kept: string[];
  /** Same id, another definition: starts afresh, its timers cancelled. */
  changed: string[];
  added: string[];
  /** Gone, its timers cancelled. */
  removed: string[];
  /** Timers cancelled with the state they belonged to. */
  timersCancelled: number;
  /** The final counters of the engine that was replaced. */
  retired: ScenarioStats[];
}

/**
 * Continues with `rules`: scenarios whose fingerprint is unchanged keep their state and their armed timers (the
 * state moves over without a copy, Engine.continueFrom); the timers of the others are cancelled, and they start
 * from empty state; the arbiter keeps its memory and weighs by the new policy. It runs synchronously, between two
 * inputs, at a cost per scenario and per timer cancelled, not per group kept.
 */
export function swapRules(target: SwapTarget, rules: RuleSet, opts: EngineOptions): SwapReport {
  const old = target.rules.engine;
  const before = new Map(old.scenarios.map((sc) => [sc.id, sc.fingerprint]));
  const report: SwapReport = {
    kept: [],
    changed: [],
    added: [],
    removed: [],
    timersCancelled: 0,
    retired: old.stats(),
  };
  const now = new Set<string>();
  for (const sc of rules.scenarios) {
    now.add(sc.id);
    const fingerprint = before.get(sc.id);
    if (fingerprint === undefined) report.added.push(sc.id);
    else if (fingerprint !== sc.fingerprint) report.changed.push(sc.id);
    else report.kept.push(sc.id);
  }
  for (const id of before.keys()) if (!now.has(id)) report.removed.push(id);

  // Kept timers stay armed as they are: arming them again from the state would undo the grace period a timer
  // overdue after a restart was given. Those of changed and removed scenarios go with their state.
  for (const timer of old.pendingTimers(new Set([...report.changed, ...report.removed]))) {
    target.cancelTimer(timer.timer);
    report.timersCancelled++;
  }
  const next = Engine.continueFrom(rules, opts, old);
  const arbiter = target.rules.arbiter.withPolicy(rules.policy);
  target.rules.use(next, arbiter, rules);
  return report;
}
