import type { KindPlan } from '../../rules/types.js';
import type { WhenFields } from '../../rules/when-fields.js';
import type { Field, Reader } from '../../rules/yaml-reader.js';
import type { Event, Expression, Profile } from '../../shared/index.js';
import type { GroupState, ScenarioRuntime } from '../state.js';
import type { Step } from '../step.js';
import type { GroupExplanation, KindDiagram, MatchProgress, Show } from './view.js';

/** The `when` keys of a kind. */
export interface KindSyntax {
  /** Keys that introduce the kind (`event`, `any`); a `when` gives exactly one, and kinds may share them. */
  selectors: readonly string[];
  /** Keys of its own: of the kinds sharing a selector, the one whose keys are given is meant (none: the kind without keys). */
  keys: readonly string[];
  /** The keys every kind may take that this one does take. */
  shared: ReadonlyArray<'where' | 'by'>;
}

/** The timer a group waits on, if any. */
export interface GroupTimer {
  actor: string;
  dueAt: number;
}

/** A kind's step when one of its timers fell due (or was fired early: the kind schedules it again). */
export type TimerStep<P extends KindPlan, S extends GroupState> = (
  step: Step,
  rt: ScenarioRuntime<P, S>,
  key: string,
  group: string,
  profile: Profile | undefined,
) => void;

/**
 * One scenario kind (count, sequence, …): its rule syntax and parsing, its step over events and timers, when
 * its state can go, how it recovers after downtime, and how the dashboard shows it. `P` is the plan it
 * parses a `when` into, `S` the state it keeps per group. Every member is a plain function (no `this`).
 */
export interface ScenarioKind<P extends KindPlan = KindPlan, S extends GroupState = GroupState> {
  /** The plan's `kind`: names the kind in the registry, the dashboard and the state's fingerprint. */
  readonly name: P['kind'];

  // The rule.
  readonly syntax: KindSyntax;
  /** Reads the kind's part of a `when`, reporting each problem; undefined when there was any. */
  readonly parse: (w: WhenFields) => P | undefined;
  /** Names the `when` binds for `having` and `then` (aggregates), read leniently even from a `when` with problems. */
  readonly boundNames?: ((r: Reader, when: Field) => string[]) | undefined;
  /** Expressions of the plan evaluated when the scenario fires, where they may read `last`. */
  readonly firingExpressions?: ((plan: P) => readonly Expression[]) | undefined;
  /** Event types the scenario listens to. */
  readonly listens: (plan: P) => readonly string[];
  /** The longest stretch of time the scenario looks at (for `replay`'s default end). */
  readonly horizonMs: (plan: P) => number;

  // The engine.
  /**
   * The `where` the kind stops at: an event that fails it changes nothing, so the engine may skip the
   * scenario for it without running the step (its predicate index).
   */
  readonly stopsAt?: ((plan: P) => Expression | undefined) | undefined;
  /** Whether the scenario also hears every event from a device itself, whatever its type (`absent: any`). */
  readonly hearsDevice?: ((plan: P) => boolean) | undefined;
  readonly onEvent: (step: Step, rt: ScenarioRuntime<P, S>, ev: Event, profile: Profile | undefined) => void;
  readonly onTimer?: TimerStep<P, S> | undefined;
  /**
   * The map its groups are kept in, when not a plain `Map`: one that stores them more compactly (column by column)
   * and hands out, and takes, the plain states that checkpoints hold. It should take a checkpoint's view of itself
   * (`ViewableGroups`, copy-on-write); one that cannot is deep-copied whole when a checkpoint is taken. Whatever the
   * map, a step changes only the states it hands out during that step, never one kept from an earlier input.
   */
  readonly groups?: ((plan: P) => Map<string, S>) | undefined;
  /** The timer a group's state waits on, to rebuild the timer queue after a restore. */
  readonly timerOf?: ((state: S) => GroupTimer | undefined) | undefined;
  /** Forgets groups that can no longer lead anywhere at `now` (wall time: `now + wallOffsetMs`, as in `Step`). */
  readonly prune?: ((rt: ScenarioRuntime<P, S>, now: number, wallOffsetMs: number) => void) | undefined;

  // Recovery after downtime.
  /** How long the kind's timers wait for their event; a timer overdue after downtime gets that long again. */
  readonly timerPeriodMs?: ((plan: P) => number | undefined) | undefined;
  /** The event type that stands for a device's last sign of life, when a new scenario is armed from last-seen times. */
  readonly lastSeenEvent?: ((plan: P) => string) | undefined;

  // The dashboard.
  /** A group part-way through matching, in plain words; undefined when there is nothing to show. */
  readonly progress: (plan: P, state: S) => MatchProgress | undefined;
  /** The device whose event the group saw last, when the state knows it. */
  readonly lastActor?: ((state: S) => string | undefined) | undefined;
  /**
   * Where a group stands at `now`, in words and figures (`vigil explain`); without it the group's `progress` is
   * shown. Undefined when the group holds nothing that counts at `now` (wall time: `now + wallOffsetMs`, default 0).
   */
  readonly explain?:
    ((plan: P, state: S, now: number, wallOffsetMs?: number) => GroupExplanation | undefined) | undefined;
  readonly diagram: (plan: P, show: Show) => KindDiagram;
}
