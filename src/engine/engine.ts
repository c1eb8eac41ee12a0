import type { RuleSet, Scenario } from '../rules/types.js';
import { DataFormatError, type Event, type Profile } from '../shared/index.js';
import type { EmittedInput, Effect } from './effects.js';
import { dataThreshold, type DataThreshold } from './fast-condition.js';
import { kindOf } from './kinds/index.js';
import type { ScenarioKind } from './kinds/index.js';
import { PlainGroups, viewOf } from './plain-groups.js';
import type {
  EngineState,
  EngineView,
  GroupState,
  GroupsView,
  LiveEngineState,
  ScenarioCounters,
  ScenarioRuntime,
  ScenarioStats,
} from './state.js';
import { parseTimerKey, Step, timerKey } from './step.js';
import { ThresholdIndex } from './threshold-index.js';
import type { StepOptions } from './step.js';

export interface EngineOptions {
  /** Gateway id stamped on every action. */
  gateway: string;
  /** How many times an emitted event may cause another emit within one step (load-time cycle checks come first). */
  maxEmitDepth?: number;
  /** A timer firing later than this after its deadline marks its action `late`. */
  lateAfterMs?: number;
}

export const DEFAULT_MAX_EMIT_DEPTH = 8;
export const DEFAULT_LATE_AFTER_MS = 1_000;

/** Sources whose events show the device itself is alive (`absent: any`). */
function fromDevice(ev: Event): boolean {
  return ev.source === 'device' || ev.source === 'broker';
}

/** A scenario running in the engine, with the kind that runs it. */
interface Running extends ScenarioRuntime {
  kind: ScenarioKind;
}

/** The scenarios listening to one event type, in load order, with what lets an event skip some of them. */
interface Listeners {
  runtimes: Running[];
  /** Which of them an event reaches, by their thresholds (see `thresholdOf`). */
  index: ThresholdIndex;
  /** Events fed to these runtimes: each of them evaluated every one (`Engine.stats`). */
  fed: number;
}

/**
 * The `where` a scenario's kind stops at (trigger, count, aggregate) as a data threshold: the kind does
 * nothing else with an event that fails it, so a failed comparison can skip the scenario (predicate
 * indexing: a hundred scenarios of one template cost a binary search of a value read once, `ThresholdIndex`).
 */
function thresholdOf(rt: Running): DataThreshold | undefined {
  const where = rt.kind.stopsAt?.(rt.sc.when);
  // Parameters that differ by profile: the threshold is not the same for every actor.
  if (where === undefined || rt.sc.paramsBy !== undefined) return undefined;
  return dataThreshold(where, rt.sc.params);
}

/** A timer the runtime should hold, as the engine's state implies it. */
export interface PendingTimer {
  timer: string;
  actor: string;
  dueAt: number;
}

/**
 * The scenario engine: pure and deterministic. Time comes in with each input (an event's `at`, a timer's
 * `now`, and `wallOffsetMs`: how far the wall clock is ahead of that gateway time, for calendar windows), state is
 * plain data, and every step returns the effects the runtime carries out.
 */
export class Engine {
  private readonly opts: StepOptions;
  private readonly runtimes: Running[];
  private readonly byId = new Map<string, Running>();
  /** Scenarios by the event types they listen to: an event costs nothing for the others. */
  private readonly byType = new Map<string, Listeners>();
  /** Scenarios fed every event from a device itself (`absent: any`). */
  private readonly deviceAny: Running[] = [];
  /** Events fed to `deviceAny`. */
  private deviceAnyFed = 0;
  /** Reused by every input (`stepAt`): the engine takes one input at a time, to the end. */
  private readonly step: Step;
  /** Feeds the step the events emitted for its own actor (`Step.drain`): made once, not per input. */
  private readonly feedEmitted = (ev: Event, profile: Profile | undefined): void =>
    this.feed(this.step, ev, profile);

  constructor(rules: RuleSet, opts: EngineOptions) {
    this.opts = {
      gateway: opts.gateway,
      maxEmitDepth: opts.maxEmitDepth ?? DEFAULT_MAX_EMIT_DEPTH,
      lateAfterMs: opts.lateAfterMs ?? DEFAULT_LATE_AFTER_MS,
    };
    this.step = new Step(0, this.opts);
    this.runtimes = rules.scenarios.map((sc) => {
      const kind = kindOf(sc.when);
      const groups = kind.groups?.(sc.when) ?? new PlainGroups<GroupState>();
      return { sc, groups, stats: { evaluations: 0, matches: 0, errors: 0 }, kind };
    });
    const byType = new Map<string, Running[]>();
    for (const rt of this.runtimes) {
      this.byId.set(rt.sc.id, rt);
      if (rt.kind.hearsDevice?.(rt.sc.when) === true) this.deviceAny.push(rt);
      for (const type of rt.sc.listens) {
        const runtimes = byType.get(type) ?? [];
        runtimes.push(rt);
        byType.set(type, runtimes);
      }
    }
    for (const [type, runtimes] of byType) {
      this.byType.set(type, { runtimes, index: new ThresholdIndex(runtimes.map(thresholdOf)), fed: 0 });
    }
  }

  /** The scenarios this engine runs, in load order. */
  get scenarios(): readonly Scenario[] {
    return this.runtimes.map((rt) => rt.sc);
  }

  /**
   * Runs one event (and the business events it leads to for its own actor) through the scenarios that listen to
   * it. Events emitted for other actors come out as `emit` effects with an `input`, for the runtime to apply.
   */
  onEvent(ev: Event, profile: Profile | undefined, wallOffsetMs = 0): Effect[] {
    const step = this.stepAt(ev.at, wallOffsetMs);
    this.feed(step, ev, profile);
    step.drain(this.feedEmitted);
    return step.taken();
  }

  /**
   * A business event another input emitted for this actor, applied as an input of its own at the time it was
   * emitted; the emits it leads to count on from its depth.
   */
  onEmitted(input: EmittedInput, profile: Profile | undefined, wallOffsetMs = 0): Effect[] {
    const step = this.stepAt(input.event.at, wallOffsetMs);
    step.depth = input.depth;
    this.feed(step, input.event, profile);
    step.drain(this.feedEmitted);
    return step.taken();
  }

  /**
   * A timer fell due. `now` is when it fires (its deadline, or later); a timer that is stale (its
   * scenario's state moved on) does nothing, and one fired before its deadline is scheduled again.
   */
  onTimer(timer: string, now: number, profile: Profile | undefined, wallOffsetMs = 0): Effect[] {
    const step = this.stepAt(now, wallOffsetMs);
    const parsed = parseTimerKey(timer);
    const rt = parsed && this.byId.get(parsed.id);
    if (!parsed || !rt) return step.taken();
    rt.stats.evaluations++;
    rt.kind.onTimer?.(step, rt, timer, parsed.group, profile);
    step.drain(this.feedEmitted);
    return step.taken();
  }

  /** The step for the next input: the one kept from input to input. */
  private stepAt(now: number, wallOffsetMs: number): Step {
    this.step.restart(now, wallOffsetMs);
    return this.step;
  }

  private feed(step: Step, ev: Event, profile: Profile | undefined): void {
    const listeners = this.byType.get(ev.type);
    if (listeners) {
      const { runtimes, index } = listeners;
      // Each runtime evaluates the event, counted once for all of them.
      listeners.fed++;
      // Those whose threshold the event fails stop there: their kind would do nothing else with it.
      const n = index.select(ev.data);
      const { selected } = index;
      for (let k = 0; k < n; k++) {
        const rt = runtimes[selected[k] as number] as Running;
        rt.kind.onEvent(step, rt, ev, profile);
      }
    }
    if (this.deviceAny.length > 0 && fromDevice(ev)) {
      this.deviceAnyFed++;
      for (const rt of this.deviceAny) rt.kind.onEvent(step, rt, ev, profile);
    }
  }

  /** Per-scenario counters, in load order. */
  stats(): ScenarioStats[] {
    return this.runtimes.map((rt) => ({ scenario: rt.sc.id, groups: rt.groups.size, ...this.counters(rt) }));
  }

  /**
   * A scenario's counters: its evaluations are the events fed to it, counted per event type for all its listeners
   * at once (`Listeners.fed`), and its timers, counted on it.
   */
  private counters(rt: Running): ScenarioCounters {
    let fed = this.deviceAny.includes(rt) ? this.deviceAnyFed : 0;
    for (const type of rt.sc.listens) fed += this.byType.get(type)?.fed ?? 0;
    return { ...rt.stats, evaluations: rt.stats.evaluations + fed };
  }

  /** The timers the engine's state is waiting on, to rebuild the runtime's queue after a restore. */
  pendingTimers(scenarioIds?: ReadonlySet<string>): PendingTimer[] {
    const out: PendingTimer[] = [];
    for (const rt of this.runtimes) {
      const timerOf = rt.kind.timerOf;
      if (timerOf === undefined || (scenarioIds !== undefined && !scenarioIds.has(rt.sc.id))) continue;
      for (const [group, state] of rt.groups) {
        const t = timerOf(state);
        if (t !== undefined) out.push({ timer: timerKey(rt.sc, group), actor: t.actor, dueAt: t.dueAt });
      }
    }
    return out;
  }

  /** Whether a pending timer of a group of `actor` alone (a scenario without `by`) waits on the device. */
  waitsOn(actor: string): boolean {
    for (const rt of this.runtimes) {
      const timerOf = rt.kind.timerOf;
      if (timerOf === undefined || rt.sc.by !== undefined) continue;
      const state = rt.groups.get(actor);
      if (state !== undefined && timerOf(state) !== undefined) return true;
    }
    return false;
  }

  /**
   * Forgets windows, counts and matches that can no longer lead anywhere at `now`, so that memory follows
   * the devices that are active rather than every device ever seen. Each kind knows when that is (silence
   * timers are kept). Returns how many groups it forgot.
   */
  prune(now: number, wallOffsetMs = 0): number {
    let pruned = 0;
    for (const rt of this.runtimes) {
      const before = rt.groups.size;
      rt.kind.prune?.(rt, now, wallOffsetMs);
      pruned += before - rt.groups.size;
    }
    return pruned;
  }

  /** How many groups the scenarios hold state for. */
  groupCount(): number {
    let n = 0;
    for (const rt of this.runtimes) n += rt.groups.size;
    return n;
  }

  /** The whole state as plain data, detached from the live engine. */
  snapshot(): EngineState {
    return {
      version: 1,
      scenarios: this.runtimes.map((rt) => ({
        id: rt.sc.id,
        fingerprint: rt.sc.fingerprint,
        groups: structuredClone([...rt.groups.entries()]),
        stats: this.counters(rt),
      })),
    };
  }

  /**
   * Each scenario's state as the engine holds it, not copied (for the dashboard, and tests that encode it in one go):
   * the groups must not be changed, nor read once the engine has taken another input (a checkpoint encodes
   * `checkpointView` instead).
   */
  liveState(): LiveEngineState {
    return {
      version: 1,
      scenarios: this.runtimes.map((rt) => ({
        id: rt.sc.id,
        fingerprint: rt.sc.fingerprint,
        groups: rt.groups,
        stats: this.counters(rt),
      })),
    };
  }

  /**
   * Each scenario's state as of now, for a checkpoint to encode while the engine goes on taking inputs: each
   * scenario's groups as a view (`GroupsView`), a shallow copy whose states are copied before their first change
   * after it (copy-on-write), so taking it costs a copy of the maps, not of the states. Each view is read once;
   * `release` once it is encoded or given up.
   */
  checkpointView(): EngineView {
    const views: GroupsView[] = [];
    try {
      for (const rt of this.runtimes) views.push(viewOf(rt.groups));
    } catch (err) {
      // None is left taken: the groups would keep copying for a view nothing reads.
      for (const view of views) view.release();
      throw err;
    }
    return {
      state: {
        version: 1,
        scenarios: this.runtimes.map((rt, i) => ({
          id: rt.sc.id,
          fingerprint: rt.sc.fingerprint,
          groups: views[i] as GroupsView,
          stats: this.counters(rt),
        })),
      },
      release: () => {
        for (const view of views) view.release();
      },
    };
  }

  /**
   * An engine for `rules` that continues from `previous` without copying: the state of each scenario whose id and
   * fingerprint are unchanged moves over as it is (its groups map and counters); new or changed ones start empty.
   * `previous` must not be used afterwards. Its cost is per scenario, not per group, so a rules swap does not
   * stall the loop however many groups there are.
   */
  static continueFrom(rules: RuleSet, opts: EngineOptions, previous: Engine): Engine {
    const engine = new Engine(rules, opts);
    for (const rt of engine.runtimes) {
      const before = previous.byId.get(rt.sc.id);
      if (!before || before.sc.fingerprint !== rt.sc.fingerprint) continue;
      rt.groups = before.groups;
      Object.assign(rt.stats, previous.counters(before));
    }
    return engine;
  }

  static restore(rules: RuleSet, opts: EngineOptions, state: EngineState): Engine {
    return Engine.fromState(rules, opts, state, true);
  }

  /**
   * Like `restore`, but the groups' states are taken as they are, not copied: for a state nothing else holds (one
   * just decoded from a checkpoint, or a fresh `snapshot`), which must not be used afterwards. A deep copy of a
   * checkpoint's 100,000 groups costs about as much as decoding it.
   */
  static adopt(rules: RuleSet, opts: EngineOptions, state: EngineState): Engine {
    return Engine.fromState(rules, opts, state, false);
  }

  private static fromState(rules: RuleSet, opts: EngineOptions, state: EngineState, copy: boolean): Engine {
    const engine = new Engine(rules, opts);
    // Never started empty in silence: checkpoints refuse a newer engine state before it gets here.
    if (state.version !== 1) throw new DataFormatError('checkpoint', state.version, 'the engine state');
    for (const saved of state.scenarios) {
      const rt = engine.byId.get(saved.id);
      if (!rt || rt.sc.fingerprint !== saved.fingerprint) continue;
      for (const [group, st] of copy ? structuredClone(saved.groups) : saved.groups) rt.groups.set(group, st);
      Object.assign(rt.stats, saved.stats);
    }
    return engine;
  }
}
