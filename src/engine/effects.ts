import type { Candidate, Event, Telemetry } from '../shared/index.js';

/** Where in a scenario an evaluation failed; a metric label, so the set is closed. */
export type ErrorStage = 'where' | 'by' | 'distinct' | 'aggregate' | 'having' | 'payload' | 'emit';

/** A decided action, with the scenario's own cooldown for the arbiter when it sets one. */
export interface ScenarioCandidate extends Candidate {
  cooldownMs?: number;
}

/**
 * A business event emitted for an actor other than the input's: an input of its own, applied after the input that
 * emitted it, with its actor's profile (docs/architecture.md, "Decision loop").
 */
export interface EmittedInput {
  /**
   * Derived from the decision that emitted it (the scenario, the group and the input that completed the match), as
   * an action id is: the same decision made again emits the same id.
   */
  id: string;
  event: Event;
  /** How many emits led to it: 1 when a scenario fed the original input emitted it. */
  depth: number;
}

/** What one engine step asks the runtime to do, in order. */
export type Effect =
  /** Arm (or move) the timer `timer` for `dueAt`; `actor` is whose profile its firing needs. */
  | { kind: 'schedule'; timer: string; actor: string; dueAt: number }
  | { kind: 'cancel'; timer: string }
  | { kind: 'decide'; candidate: ScenarioCandidate }
  /**
   * A business event a scenario emitted. Without `input` it is the input's actor's and the engine already fed it
   * back within the step (or it nested too deep); with `input` it is another actor's, for the runtime to apply as
   * an input of its own.
   */
  | { kind: 'emit'; event: Event; input?: EmittedInput }
  | { kind: 'forward'; telemetry: Telemetry }
  | { kind: 'error'; scenario: string; actor: string; stage: ErrorStage; message: string };
