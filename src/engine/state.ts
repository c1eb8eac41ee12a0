import type { Scenario } from '../rules/index.js';
import type { EventSource } from '../shared/index.js';

/** What the engine keeps of a past event; `data` only when the scenario reads it later. */
export interface SeenEvent {
  actor: string;
  type: string;
  at: number;
  source: EventSource;
  data?: Record<string, unknown>;
}

/** `absent … for`: the deadline of the current silence and the event that started it. */
export interface SilenceState {
  dueAt: number;
  last: SeenEvent;
}

/** `count`/`within`: arrival times in the window (oldest first) and, with `distinct`, their values. */
export interface CountState {
  ats: number[];
  keys?: string[];
}

/** `window`/`aggregate`: arrival times in the window and, per aggregate, the values they carried. */
export interface AggregateState {
  ats: number[];
  values: unknown[][];
}

/** `sequence`: the step waited for, when the previous step matched, and the deadline of an absent step. */
export interface SequenceState {
  step: number;
  prevAt: number;
  dueAt?: number;
  last: SeenEvent;
  /** The data of the matched events merged in arrival order (when the scenario reads `last.data`). */
  data?: Record<string, unknown>;
}

/** `all`: when each listed event last came (null: not yet, or too long ago), and what it carried. */
export interface AllState {
  ats: Array<number | null>;
  data?: Array<Record<string, unknown> | null>;
  last: SeenEvent;
}

export type GroupState = SilenceState | CountState | AggregateState | SequenceState | AllState;

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

/** A scenario with its live state, inside the engine. */
export interface ScenarioRuntime {
  sc: Scenario;
  groups: Map<string, GroupState>;
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
