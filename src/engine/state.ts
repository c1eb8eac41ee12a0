import type { KindPlan, Scenario } from '../rules/types.js';
import type { EventSource } from '../shared/index.js';

/** What the engine keeps of a past event; `data` only when the scenario reads it later. */
export interface SeenEvent {
  actor: string;
  type: string;
  at: number;
  source: EventSource;
  data?: Record<string, unknown>;
}

/**
 * One group's state in a scenario: plain data (JSON- and CBOR-safe, for checkpoints) whose shape the
 * scenario's kind decides (see engine/kinds).
 */
export type GroupState = object;

export interface ScenarioCounters {
  /** Inputs (events and timers) the scenario looked at. */
  evaluations: number;
  /** Times it fired. */
  matches: number;
  /** Expressions that could not be evaluated. */
  errors: number;
  lastFiredAt?: number;
}

/** Per-scenario figures for metrics and the dashboard. */
export interface ScenarioStats extends ScenarioCounters {
  scenario: string;
  /** Groups (usually devices) the scenario holds state for. */
  groups: number;
}

/** A scenario with its live state, inside the engine; a kind sees its own plan and group states. */
export interface ScenarioRuntime<P extends KindPlan = KindPlan, S extends GroupState = GroupState> {
  sc: Scenario & { when: P };
  groups: Map<string, S>;
  stats: ScenarioCounters;
}

/** The engine's whole state as plain data (JSON- and CBOR-safe), for checkpoints. */
export interface EngineState {
  version: 1;
  scenarios: Array<{
    id: string;
    fingerprint: string;
    groups: Array<[group: string, state: GroupState]>;
    stats: ScenarioCounters;
  }>;
}

/** The engine's state as it holds it (`Engine.liveState`): the groups are its own maps, not copies. */
export interface LiveEngineState {
  version: 1;
  scenarios: Array<
    Omit<EngineState['scenarios'][number], 'groups'> & { groups: ReadonlyMap<string, GroupState> }
  >;
}

/**
 * A scenario's groups as they were when the view was taken (`Engine.checkpointView`): inputs applied since do not
 * reach it. It hands out each group once, in the order the groups were kept; `release` ends what keeps it (copying a
 * state before its first change), and iterating it to the end releases it too.
 */
export interface GroupsView extends Iterable<[group: string, state: GroupState]> {
  readonly release: () => void;
}

/** Groups that take such a view without copying every state: a shallow copy, and copy-on-write after it. */
export interface ViewableGroups {
  view(): GroupsView;
}

/** The engine's state as of one instant, for a checkpoint to encode while later inputs are applied. */
export interface EngineView {
  state: {
    version: 1;
    scenarios: Array<Omit<EngineState['scenarios'][number], 'groups'> & { groups: GroupsView }>;
  };
  /** Ends the views' copying on write (once encoded, or given up). */
  readonly release: () => void;
}
