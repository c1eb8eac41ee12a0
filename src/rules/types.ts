import type { Destination, Expression, RuleProblem } from '../shared/index.js';
import type { Policy } from './policy.js';

/** One named value of a payload or of an emitted event's data, computed by CEL when the scenario fires. */
export interface FieldPlan {
  name: string;
  expr: Expression;
}

/**
 * What a scenario's `when` compiles to. Its `kind` names the scenario kind (engine/kinds) that parsed it and
 * runs it; the rest is that kind's own (`WhenPlan` is the union of the built-in kinds' plans).
 */
export interface KindPlan {
  readonly kind: string;
}

/** The event a scenario's `emit` feeds back into the engine. */
export interface EmitPlan {
  event: string;
  data: readonly FieldPlan[];
  /** Whose event it is (`emit: {event, actor}`); otherwise the group of a grouped scenario, or the match's actor. */
  actor?: Expression;
}

/** The parameters of one scenario for the actors whose profile field `field` has a given value. */
export interface ParamsByField {
  field: string;
  /** By the field's value (as text): the overrides alone, and the scenario's parameters with them. */
  values: ReadonlyMap<string, { overrides: Readonly<Record<string, unknown>>; params: Readonly<Record<string, unknown>> }>;
}

/** Telemetry a scenario forwards upstream when it fires (`then.forward`), at most once, in its own lane. */
export interface ForwardPlan {
  /** `raw`: the event that made the scenario fire, as it came; `aggregates`: what the scenario's window computed. */
  of: 'raw' | 'aggregates';
  /** One in `oneIn` firings per actor. */
  oneIn?: number;
  /** At most one per `everyMs` per actor. */
  everyMs?: number;
  /** `vigil/{gw}/telemetry/{type}`; default the event's type (raw) or the scenario's id (aggregates). */
  type?: string;
}

/** A compiled scenario: what the engine runs. */
export interface Scenario {
  id: string;
  description: string;
  priority: number;
  category: string;
  /** Rule file and line where the scenario is defined. */
  file: string;
  line: number;
  /** The action decided when it fires; absent when the scenario only emits. */
  action?: string;
  to: readonly Destination[];
  payload: readonly FieldPlan[];
  emit?: EmitPlan;
  forward?: ForwardPlan;
  /** The scenario's own cooldown for the arbiter, when it sets one. */
  cooldownMs?: number;
  /** Group key; absent means one group per actor. */
  by?: Expression;
  when: KindPlan;
  /** Template parameters, visible to CEL as `params`. */
  params: Readonly<Record<string, unknown>>;
  /**
   * Parameters that differ by a profile field (the rules' parameter file): for an actor whose profile has one of
   * these values, CEL sees `params` with its overrides, later fields over earlier ones.
   */
  paramsBy?: readonly ParamsByField[];
  /** Event types the scenario listens to (not counting `absent: any`). */
  listens: readonly string[];
  /** The longest stretch of time the scenario looks at (for `replay`'s default end). */
  horizonMs: number;
  /** Whether `last.data` is used, so the engine keeps the data of past events (otherwise only their time). */
  keepsData: boolean;
  /**
   * Hash of what the scenario's state depends on (its `when`, `by` and parameters, after templates):
   * state kept for a scenario survives a rule change that leaves this unchanged.
   */
  fingerprint: string;
}

/** A loaded rules directory or bundle. */
export interface RuleSet {
  scenarios: Scenario[];
  policy?: Policy;
  files: string[];
  /** The schema file the expressions were type-checked against; absent when the rules declare none. */
  schema?: string;
  /** The files as compiled: what a journal record of a rules swap keeps, so a replay can compile them again. */
  sources?: ReadonlyArray<{ path: string; text: string }>;
}

export type LoadResult =
  | { ok: true; rules: RuleSet }
  /** `schema`: the schema the expressions were checked against, when the rules declare one. */
  | { ok: false; problems: RuleProblem[]; schema?: string };
