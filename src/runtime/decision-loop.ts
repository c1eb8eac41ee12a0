import { DEFAULT_ARBITER_ENTRIES, type Verdict } from '../actions/index.js';
import type { EmittedInput, Effect } from '../engine/index.js';
import type { Candidate, Event, Profile, Telemetry } from '../shared/index.js';
import { WallTime } from './clock.js';
import type { ClockRecord } from './journal-records.js';
import type { RulesInForce } from './rules-in-force.js';
import type { Scheduler } from './scheduler.js';

export type ErrorEffect = Extract<Effect, { kind: 'error' }>;

/** What the loop hands on; `replay` is set while recovery re-decides inputs the journal already held. */
export interface LoopOutputs {
  /** Every verdict on a decided candidate, in the order the arbiter weighed them. */
  verdict(verdict: Verdict<Candidate>, now: number, replay: boolean): void;
  /** An expression of a scenario could not be evaluated. */
  error?(effect: ErrorEffect, now: number, replay: boolean): void;
  /** Every business event a scenario emitted, whether fed back within the step or handed to `emitted`. */
  emit?(event: Event, replay: boolean): void;
  /**
   * A business event emitted for an actor other than the input's: an input of its own, to be applied after this one
   * (`onEmitted`) with that actor's profile. Live it goes through its actor's entrance and the journal; a replay of
   * the journal finds it there.
   */
  emitted?(input: EmittedInput, replay: boolean): void;
  /** The wall clock stepped or became synchronised (a clock record was applied). */
  clock?(record: ClockRecord, replay: boolean): void;
  /** Telemetry a scenario forwards; never carried out again by a replay (at most once). */
  forward?(telemetry: Telemetry, replay: boolean): void;
  /** A housekeeping pass forgot `groups` groups that could no longer fire at `at`. */
  pruned?(groups: number, at: number, replay: boolean): void;
  /**
   * The arbiter's memory was over its bound at `at`: `entries` went, those whose hold ended soonest (see
   * `Arbiter.evict`).
   */
  evicted?(entries: number, at: number, replay: boolean): void;
  /** Every step's effects as the engine returned them (tests). */
  step?(effects: readonly Effect[]): void;
}

export interface DecisionLoopDeps {
  rules: RulesInForce;
  scheduler: Scheduler;
  outputs: LoopOutputs;
  /** Without arbitration every candidate is sent (replays of scenarios alone). Default true. */
  arbitrate?: boolean;
  /** The most entries the arbiter remembers (`limits.arbiterEntries`); default `DEFAULT_ARBITER_ENTRIES`. */
  arbiterEntries?: number;
}

/**
 * Past its bound the arbiter forgets this share more than the excess, so that the look at every entry a pass takes is
 * made once in many decisions rather than at each.
 */
const EVICT_SLACK = 1 / 64;

/**
 * The one effect interpreter: runs an input through the engine in force, carries out the effects it returns
 * (arms and cancels timers behind the scheduler port, weighs the decided candidates with the arbiter) and hands
 * the verdicts, errors and emitted events to its outputs. The live gateway, recovery, `vigil replay` and the
 * tests all go through it.
 *
 * While recovery replays the journal (`replay`), the state moves exactly as it did the first time but no timer is
 * armed: they are rebuilt from the state afterwards (`armTimer`).
 */
export class DecisionLoop {
  /** The wall time stamped on the actions decided, as the clock records applied so far set it. */
  readonly wall = new WallTime();

  constructor(private readonly deps: DecisionLoopDeps) {}

  get rules(): RulesInForce {
    return this.deps.rules;
  }

  get scheduler(): Scheduler {
    return this.deps.scheduler;
  }

  onEvent(ev: Event, profile: Profile | undefined, replay = false): readonly Effect[] {
    const effects = this.deps.rules.engine.onEvent(ev, profile, this.wall.syncedOffsetMs);
    this.apply(effects, ev.at, ev.actor, profile, replay);
    return effects;
  }

  /** A business event another input emitted for `input.event.actor`, with that actor's profile. */
  onEmitted(input: EmittedInput, profile: Profile | undefined, replay = false): readonly Effect[] {
    const effects = this.deps.rules.engine.onEmitted(input, profile, this.wall.syncedOffsetMs);
    this.apply(effects, input.event.at, input.event.actor, profile, replay);
    return effects;
  }

  /** `actor` is whose profile the firing needs, as the scheduler (or the journaled timer record) knows it. */
  onTimer(
    timer: string,
    now: number,
    actor: string | undefined,
    profile: Profile | undefined,
    replay = false,
  ): readonly Effect[] {
    const effects = this.deps.rules.engine.onTimer(timer, now, profile, this.wall.syncedOffsetMs);
    this.apply(effects, now, actor ?? '', profile, replay);
    return effects;
  }

  /**
   * A housekeeping pass: the engine forgets the groups from which nothing can fire any more at `at`, the arbiter what
   * its windows no longer see. It is an input like the others so that recovery and replay hold the same state as the
   * live gateway: what the arbiter forgot is not counted by a later rules swap that widens a window.
   */
  prune(at: number, replay = false): number {
    const groups = this.deps.rules.engine.prune(at, this.wall.syncedOffsetMs);
    this.deps.rules.arbiter.prune(at);
    this.deps.outputs.pruned?.(groups, at, replay);
    this.boundArbiter(at, replay);
    return groups;
  }

  /**
   * The wall clock stepped against gateway time (or became synchronised): actions decided from here on are stamped
   * with the new offset, and calendar windows put their boundaries where the synchronised wall clock shows them (the
   * engine gets `wall.syncedOffsetMs` with each input). Timers stay on gateway time and are not touched.
   */
  onClock(record: ClockRecord, replay = false): void {
    this.wall.apply(record);
    this.deps.outputs.clock?.(record, replay);
  }

  /** Arms a timer the engine's state waits on, for `dueAt` (its deadline, or later after a restart). */
  armTimer(timer: string, actor: string, dueAt: number): void {
    this.deps.scheduler.schedule(timer, actor, dueAt);
  }

  cancelTimer(timer: string): void {
    this.deps.scheduler.cancel(timer);
  }

  private apply(
    effects: readonly Effect[],
    now: number,
    actor: string,
    profile: Profile | undefined,
    replay: boolean,
  ): void {
    const { outputs } = this.deps;
    outputs.step?.(effects);
    let candidates: Candidate[] | undefined;
    for (const effect of effects) {
      switch (effect.kind) {
        case 'schedule':
          if (!replay) this.armTimer(effect.timer, effect.actor, effect.dueAt);
          break;
        case 'cancel':
          if (!replay) this.cancelTimer(effect.timer);
          break;
        case 'decide':
          (candidates ??= []).push(effect.candidate);
          break;
        case 'emit':
          outputs.emit?.(effect.event, replay);
          if (effect.input) outputs.emitted?.(effect.input, replay);
          break;
        case 'forward':
          outputs.forward?.(effect.telemetry, replay);
          break;
        case 'error':
          outputs.error?.(effect, now, replay);
          break;
      }
    }
    if (!candidates) return;
    for (const candidate of candidates) this.stamp(candidate);
    if (this.deps.arbitrate === false) {
      for (const candidate of candidates) outputs.verdict({ candidate }, now, replay);
      return;
    }
    // A candidate's actor is the input's: an event emitted for another actor is decided on as an input of its own,
    // with its actor's profile. So contact keys read only the profile the input came with, as recorded.
    const profileOf = (who: string) => (who === actor ? profile : undefined);
    for (const verdict of this.deps.rules.arbiter.decide(candidates, now, profileOf)) {
      outputs.verdict(verdict, now, replay);
    }
    this.boundArbiter(now, replay);
  }

  /**
   * Holds the arbiter's memory to its bound, at the same input live, in recovery and in a replay (the memory it
   * looks at is the same there), so that they forget alike.
   */
  private boundArbiter(at: number, replay: boolean): void {
    const max = this.deps.arbiterEntries ?? DEFAULT_ARBITER_ENTRIES;
    const { arbiter } = this.deps.rules;
    if (arbiter.size <= max) return;
    const evicted = arbiter.evict(max - Math.floor(max * EVICT_SLACK));
    this.deps.outputs.evicted?.(evicted, at, replay);
  }

  /**
   * The engine decides on gateway time; what leaves the gateway carries wall time. An action decided while the wall
   * clock was not synchronised says so (`clockSynced: false`) rather than pass a 1970 date for a real one.
   */
  private stamp(candidate: Candidate): void {
    const { action } = candidate;
    action.decidedAt = this.wall.at(action.decidedAt);
    action.eventAt = this.wall.at(action.eventAt);
    if (!this.wall.synced) action.clockSynced = false;
    if (this.wall.offsetMs !== 0) action.clockOffsetMs = this.wall.offsetMs;
  }
}
