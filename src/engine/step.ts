import type { EmitPlan, FieldPlan, Scenario } from '../rules/types.js';
import type { Action, Event, Expression, Profile, Telemetry } from '../shared/index.js';
import { canonicalJson, fnv1a64 } from '../shared/hash.js';
import type { Effect, ErrorStage, ScenarioCandidate } from './effects.js';
import { fastCondition } from './fast-condition.js';
import { paramsOf } from './scenario-params.js';
import type { ScenarioRuntime, SeenEvent } from './state.js';

export interface StepOptions {
  gateway: string;
  maxEmitDepth: number;
  lateAfterMs: number;
}

/**
 * What CEL sees as `profile` for an actor without one: a rule's default (`has(profile.name) ? profile.name :
 * "customer"`) then applies, and a plain `profile.name` fails with a message naming the missing profile.
 */
const NO_PROFILE: Profile = Object.freeze({});

/** Variables of a CEL evaluation over one event. */
export type Vars = Record<string, unknown>;

/** A completed match: what the action and the emitted event are made of. */
export interface Match {
  group: string;
  /** The device whose event (or silence) completed the match. */
  actor: string;
  eventAt: number;
  /** Identifies the input that completed the match, for the action id. */
  input: string;
  /** The match's last event, as CEL sees `last`; `data` merged over the match where that applies. */
  last: SeenEvent;
  profile: Profile | undefined;
  /** Aggregates, visible by name. */
  extra?: Vars | undefined;
}

interface Pending {
  ev: Event;
  profile: Profile | undefined;
  depth: number;
}

/** Separates the parts of hashed ids; it cannot occur in scenario ids or in JSON text. */
const SEP = '\u0000';

export function timerKey(sc: Scenario, group: string): string {
  return `${sc.id}:${group}`;
}

/** Splits a timer key into its scenario id (which cannot contain `:`) and group. */
export function parseTimerKey(key: string): { id: string; group: string } | undefined {
  const i = key.indexOf(':');
  return i <= 0 ? undefined : { id: key.slice(0, i), group: key.slice(i + 1) };
}

export function eventInput(ev: Event): string {
  return ['e', ev.actor, ev.type, String(ev.at), canonicalJson(ev.data)].join(SEP);
}

export function timerInput(key: string, dueAt: number): string {
  return ['t', key, String(dueAt)].join(SEP);
}

export function seen(ev: Event, keepData: boolean): SeenEvent {
  const s: SeenEvent = { actor: ev.actor, type: ev.type, at: ev.at, source: ev.source };
  if (keepData) s.data = ev.data;
  return s;
}

/** A CEL value as a group or distinct key; undefined when it cannot be one. */
function keyOf(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(value);
    case 'object':
      return value === null ? undefined : canonicalJson(value);
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
}

/**
 * One engine step: the effects it produces, the business events it feeds back, and the evaluation helpers
 * the scenario kinds share.
 */
export class Step {
  /**
   * The effects of the input being processed: the first `effectCount` of a list kept from input to input (`taken`
   * copies them out). Never shortened: an emptied array lets go of its backing store, and the next push makes one.
   */
  private readonly effects: Effect[] = [];
  private effectCount = 0;
  private readonly queue: Pending[] = [];
  private time: number;
  private offset: number;

  constructor(
    now: number,
    readonly opts: StepOptions,
    wallOffsetMs = 0,
  ) {
    this.time = now;
    this.offset = wallOffsetMs;
  }

  /**
   * How far wall time is ahead of gateway time for this input (the offset the journal recorded): calendar windows
   * put their boundaries where the wall clock shows them. Timers and `now` stay on gateway time.
   */
  get wallOffsetMs(): number {
    return this.offset;
  }

  /** When the input being processed happens (an event's `at`, a timer's firing time). */
  get now(): number {
    return this.time;
  }

  /**
   * Starts the next input on this step, which the engine keeps from one input to the next (inputs run one at a
   * time): no effects, depth 0, no event's variables.
   */
  restart(now: number, wallOffsetMs: number): void {
    this.time = now;
    this.offset = wallOffsetMs;
    this.effectCount = 0;
    this.queue.length = 0;
    this.depth = 0;
    this.varsEvent = undefined;
  }

  /** The input's effects in a list of their own, of its exact length, for the caller to keep. */
  taken(): Effect[] {
    const out = this.effects.slice(0, this.effectCount);
    // Let go of what they refer to.
    this.effects.fill(undefined as unknown as Effect, 0, this.effectCount);
    return out;
  }

  private effect(e: Effect): void {
    if (this.effectCount < this.effects.length) this.effects[this.effectCount] = e;
    else this.effects.push(e);
    this.effectCount++;
  }

  private varsEvent: Event | undefined;
  private readonly vars: Vars = { data: undefined, actor: undefined, params: undefined, profile: undefined };

  /**
   * The variables of an expression over `ev`. One object serves every scenario looking at the same event (only
   * `params` differs), and the next event too; callers use it synchronously and copy it to keep it.
   */
  baseVars(rt: ScenarioRuntime, ev: Event, profile: Profile | undefined): Vars {
    const vars = this.vars;
    if (this.varsEvent !== ev) {
      this.varsEvent = ev;
      vars.data = ev.data;
      vars.actor = ev.actor;
      vars.profile = profile ?? NO_PROFILE;
    }
    vars.params = paramsOf(rt.sc, profile);
    return vars;
  }

  error(rt: ScenarioRuntime, actor: string, stage: ErrorStage, message: string): void {
    rt.stats.errors++;
    this.effect({ kind: 'error', scenario: rt.sc.id, actor, stage, message });
  }

  /** Evaluates an expression, reporting a failure as an error effect; `ok: false` then. */
  evaluate(
    rt: ScenarioRuntime,
    expr: Expression,
    vars: Vars,
    actor: string,
    stage: ErrorStage,
  ): { ok: true; value: unknown } | { ok: false } {
    const r = expr.evaluate(vars);
    if (r.ok) return r;
    const message =
      vars.profile === NO_PROFILE && /\bprofile\b/.test(expr.source)
        ? `no profile for ${actor}: ${r.error}`
        : r.error;
    this.error(rt, actor, stage, `${expr.source}: ${message}`);
    return { ok: false };
  }

  /** A condition; one that cannot be evaluated, or gives anything but a boolean, does not hold. */
  holds(
    rt: ScenarioRuntime,
    expr: Expression | undefined,
    vars: Vars,
    actor: string,
    stage: ErrorStage = 'where',
  ): boolean {
    if (expr === undefined) return true;
    const fast = fastCondition(expr)?.(vars);
    if (fast !== undefined) return fast;
    const r = this.evaluate(rt, expr, vars, actor, stage);
    if (!r.ok) return false;
    if (typeof r.value === 'boolean') return r.value;
    this.error(
      rt,
      actor,
      stage,
      `${expr.source}: gives ${r.value === null ? 'null' : typeof r.value}, not true or false`,
    );
    return false;
  }

  /** A key from a `by` or `distinct` expression; an event whose key cannot be computed is left out. */
  key(
    rt: ScenarioRuntime,
    expr: Expression,
    vars: Vars,
    actor: string,
    stage: 'by' | 'distinct',
  ): string | undefined {
    const r = this.evaluate(rt, expr, vars, actor, stage);
    if (!r.ok) return undefined;
    const key = keyOf(r.value);
    if (key === undefined)
      this.error(
        rt,
        actor,
        stage,
        `${expr.source}: gives null, which cannot be a ${stage === 'by' ? 'group' : 'value'}`,
      );
    return key;
  }

  /** The group of an event: the `by` key, or the actor. */
  group(rt: ScenarioRuntime, vars: Vars, actor: string): string | undefined {
    return rt.sc.by ? this.key(rt, rt.sc.by, vars, actor, 'by') : actor;
  }

  /** The group of an event that passes `where`; undefined when it does not, or has no group. */
  passingGroup(
    rt: ScenarioRuntime,
    where: Expression | undefined,
    vars: Vars,
    actor: string,
  ): string | undefined {
    return this.holds(rt, where, vars, actor) ? this.group(rt, vars, actor) : undefined;
  }

  /** A timer that fell due before its deadline is scheduled again (for the kind to wait on); true when it was. */
  rearmEarly(timer: string, actor: string, dueAt: number): boolean {
    if (dueAt <= this.now) return false;
    this.schedule(timer, actor, dueAt);
    return true;
  }

  schedule(timer: string, actor: string, dueAt: number): void {
    this.effect({ kind: 'schedule', timer, actor, dueAt });
  }

  cancel(timer: string): void {
    this.effect({ kind: 'cancel', timer });
  }

  /** The scenario fired: decide its action and emit its event. */
  fire(rt: ScenarioRuntime, m: Match): void {
    const sc = rt.sc;
    rt.stats.matches++;
    rt.stats.lastFiredAt = this.now;
    const vars: Vars = {
      data: m.last.data ?? {},
      actor: m.actor,
      params: paramsOf(sc, m.profile),
      last: { ...m.last, data: m.last.data ?? {} },
      group: m.group,
      profile: m.profile ?? NO_PROFILE,
      ...m.extra,
    };
    if (sc.action !== undefined) this.decide(rt, m, vars, sc.action);
    if (sc.emit) this.emit(rt, m, vars, sc.emit);
    if (sc.forward) this.forward(sc, m);
  }

  /** The scenario's telemetry: the event that fired it, or its aggregates; the lane samples it. */
  private forward(sc: Scenario, m: Match): void {
    const plan = sc.forward;
    if (!plan) return;
    const raw = plan.of === 'raw';
    const telemetry: Telemetry = {
      scenario: sc.id,
      type: plan.type ?? (raw ? m.last.type : sc.id),
      actor: m.actor,
      at: this.now,
      data: raw ? (m.last.data ?? {}) : { ...m.extra, ...(sc.by ? { group: m.group } : {}) },
      of: plan.of,
    };
    if (plan.oneIn !== undefined) telemetry.oneIn = plan.oneIn;
    if (plan.everyMs !== undefined) telemetry.everyMs = plan.everyMs;
    this.effect({ kind: 'forward', telemetry });
  }

  /**
   * Evaluates the fields of a payload or of emitted data. A field that fails is an error, counted and
   * reported with the scenario and actor, and nothing is made of the fields: undefined then, never a null
   * standing in for the value. A rule that wants a default writes it (`has(profile.name) ? profile.name : "x"`).
   */
  private fields(
    rt: ScenarioRuntime,
    plans: readonly FieldPlan[],
    vars: Vars,
    actor: string,
    stage: 'payload' | 'emit',
    what: string,
  ): Record<string, unknown> | undefined {
    const out: Record<string, unknown> = {};
    let ok = true;
    for (const f of plans) {
      const r = f.expr.evaluate(vars);
      if (r.ok) {
        out[f.name] = r.value;
        continue;
      }
      ok = false;
      const message =
        vars.profile === NO_PROFILE && /\bprofile\b/.test(f.expr.source)
          ? `no profile for ${actor}: ${r.error}`
          : r.error;
      this.error(rt, actor, stage, `${stage}.${f.name}: ${f.expr.source}: ${message} (${what} not sent)`);
    }
    return ok ? out : undefined;
  }

  /** The actor an `emit.actor` expression names; undefined (an error reported) when it names none. */
  private emitActor(
    rt: ScenarioRuntime,
    m: Match,
    vars: Vars,
    expr: Expression,
    what: string,
  ): string | undefined {
    const r = this.evaluate(rt, expr, vars, m.actor, 'emit');
    if (!r.ok) return undefined;
    const actor = keyOf(r.value);
    if (actor !== undefined && actor !== '') return actor;
    this.error(rt, m.actor, 'emit', `emit.actor: ${expr.source}: gives no actor (${what} not sent)`);
    return undefined;
  }

  private decide(rt: ScenarioRuntime, m: Match, vars: Vars, name: string): void {
    const sc = rt.sc;
    const payload = this.fields(rt, sc.payload, vars, m.actor, 'payload', `action ${name}`);
    if (payload === undefined) return;
    const action: Action = {
      id: fnv1a64([sc.id, m.group, m.input].join(SEP)),
      gateway: this.opts.gateway,
      scenario: sc.id,
      action: name,
      actor: m.actor,
      priority: sc.priority,
      category: sc.category,
      decidedAt: this.now,
      eventAt: m.eventAt,
      payload,
    };
    if (sc.by) action.group = m.group;
    if (this.now - m.eventAt > this.opts.lateAfterMs) action.late = true;
    const candidate: ScenarioCandidate = { action, to: sc.to };
    if (sc.cooldownMs !== undefined) candidate.cooldownMs = sc.cooldownMs;
    this.effect({ kind: 'decide', candidate });
  }

  /**
   * Emits the scenario's business event for its actor: `emit.actor` when the rule names one, else the group of a
   * grouped scenario, else the actor of the match. An event of the match's actor (the input's) is fed back within
   * the step; another actor's becomes an input of its own, applied after this one with that actor's profile (its
   * id made like an action's, from the scenario, the group and the input that completed the match).
   */
  private emit(rt: ScenarioRuntime, m: Match, vars: Vars, emit: EmitPlan): void {
    const what = `event ${emit.event}`;
    const actor = emit.actor ? this.emitActor(rt, m, vars, emit.actor, what) : rt.sc.by ? m.group : m.actor;
    if (actor === undefined) return;
    const data = this.fields(rt, emit.data, vars, m.actor, 'emit', what);
    if (data === undefined) return;
    const event: Event = { actor, type: emit.event, at: this.now, data, source: 'engine' };
    const depth = this.depth + 1;
    if (depth > this.opts.maxEmitDepth) {
      this.effect({ kind: 'emit', event });
      const how = actor === m.actor ? 'fed back' : 'applied';
      this.error(
        rt,
        m.actor,
        'emit',
        `${emit.event} not ${how}: emits nested deeper than ${this.opts.maxEmitDepth}`,
      );
      return;
    }
    if (actor !== m.actor) {
      const id = fnv1a64(['emit', rt.sc.id, m.group, m.input].join(SEP));
      this.effect({ kind: 'emit', event, input: { id, event, depth } });
      return;
    }
    this.effect({ kind: 'emit', event });
    this.queue.push({ ev: event, profile: m.profile, depth });
  }

  /** The scenario fired on `ev`, which completed the match and is its `last` unless another is given. */
  fireOnEvent(
    rt: ScenarioRuntime,
    group: string,
    ev: Event,
    profile: Profile | undefined,
    last: SeenEvent = seen(ev, true),
    extra?: Vars,
  ): void {
    this.fire(rt, { group, actor: ev.actor, eventAt: ev.at, input: eventInput(ev), last, profile, extra });
  }

  /**
   * Depth of the input being processed: 0 for a device's or the cloud's event or a timer, n for an event emitted n
   * times over (an emitted event applied as an input of its own starts the step at its depth).
   */
  depth = 0;

  /** Runs `process` over every emitted event, breadth first, until none are left. */
  drain(process: (ev: Event, profile: Profile | undefined) => void): void {
    for (let i = 0; i < this.queue.length; i++) {
      const p = this.queue[i] as Pending;
      this.depth = p.depth;
      process(p.ev, p.profile);
    }
    this.queue.length = 0;
    this.depth = 0;
  }
}
