import type { Candidate, Event } from '../shared/index.js';

/** Where in a scenario an evaluation failed; a metric label, so the set is closed. */
export type ErrorStage = 'where' | 'by' | 'distinct' | 'aggregate' | 'having' | 'payload' | 'emit';

/** A decided action, with the scenario's own cooldown for the arbiter when it sets one. */
export interface ScenarioCandidate extends Candidate {
  cooldownMs?: number;
}

/** What one engine step asks the runtime to do, in order. */
export type Effect =
  /** Arm (or move) the timer `timer` for `dueAt`; `actor` is whose profile its firing needs. */
  | { kind: 'schedule'; timer: string; actor: string; dueAt: number }
  | { kind: 'cancel'; timer: string }
  | { kind: 'decide'; candidate: ScenarioCandidate }
  /** A business event a scenario emitted; informational, the engine already fed it back within the step. */
  | { kind: 'emit'; event: Event }
  | { kind: 'error'; scenario: string; actor: string; stage: ErrorStage; message: string };
