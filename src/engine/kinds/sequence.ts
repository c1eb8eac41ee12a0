import { isSeq } from 'yaml';
import { compile, EVENT_VARS, eventName, MAX_PERIOD_MS } from '../../rules/when-fields.js';
import type { WhenFields } from '../../rules/when-fields.js';
import type { Field, Reader, Source, YamlNode } from '../../rules/yaml-reader.js';
import type { Event, Expression, Profile } from '../../shared/index.js';
import type { ScenarioRuntime, SeenEvent } from '../state.js';
import { eventInput, seen, timerInput, timerKey } from '../step.js';
import type { Step, Vars } from '../step.js';
import type { ScenarioKind, TimerStep } from './kind.js';
import { absentLabel, absentTypes, absentValue } from './silence.js';
import { eventBox, formatDuration, timeText } from './view.js';
import type { DiagramBox, GroupExplanation, KindDiagram, MatchProgress, Show } from './view.js';

const STEP_KEYS = ['event', 'absent', 'where', 'within'];

/**
 * One step of a `sequence`: an event that must come, or one that must not come before its deadline (an absent
 * step may name several types, any of which ends the match).
 */
export interface StepPlan {
  kind: 'event' | 'absent';
  event: string | readonly string[];
  where?: Expression;
  /** For an event step, the latest it may come after the previous step; for an absent step, its deadline. */
  withinMs?: number;
}

/** `sequence`: steps in order per group. */
export interface SequencePlan {
  kind: 'sequence';
  steps: readonly StepPlan[];
}

/** The step waited for, when the previous step matched, and the deadline of an absent step. */
export interface SequenceState {
  step: number;
  prevAt: number;
  dueAt?: number;
  last: SeenEvent;
  /** The data of the matched events merged in arrival order (when the scenario reads `last.data`). */
  data?: Record<string, unknown>;
}

type Runtime = ScenarioRuntime<SequencePlan, SequenceState>;

function matches(step: Step, rt: Runtime, s: StepPlan, ev: Event, vars: Vars): boolean {
  const type = typeof s.event === 'string' ? s.event === ev.type : s.event.includes(ev.type);
  return type && step.holds(rt, s.where, vars, ev.actor);
}

/** After a step matched: the sequence is complete, or waits for the next step (arming its deadline if absent). */
function advanced(
  step: Step,
  rt: Runtime,
  group: string,
  st: SequenceState,
  input: string,
  profile: Profile | undefined,
): void {
  const plan = rt.sc.when;
  const next = plan.steps[st.step];
  if (next === undefined) {
    rt.groups.delete(group);
    const last = st.data !== undefined ? { ...st.last, data: st.data } : st.last;
    step.fire(rt, { group, actor: st.last.actor, eventAt: st.prevAt, input, last, profile });
    return;
  }
  rt.groups.set(group, st);
  if (next.kind === 'absent') {
    st.dueAt = st.prevAt + (next.withinMs ?? 0);
    step.schedule(timerKey(rt.sc, group), st.last.actor, st.dueAt);
  } else {
    delete st.dueAt;
  }
}

/**
 * `sequence`: one match per group runs through the steps in order. An event step must come within its
 * `within` of the step before (inclusive); an absent step fires at its deadline unless its event came
 * first, which ends the match quietly. A first-step event that does not advance a pending match starts
 * the match afresh.
 */
export function onSequenceEvent(step: Step, rt: Runtime, ev: Event, profile: Profile | undefined): void {
  const plan = rt.sc.when;
  const vars = step.baseVars(rt, ev, profile);
  const group = step.group(rt, vars, ev.actor);
  if (group === undefined) return;
  const key = timerKey(rt.sc, group);
  const keep = rt.sc.keepsData;

  let st = rt.groups.get(group);
  let timerArmed = st?.dueAt !== undefined;
  if (st) {
    const pending = plan.steps[st.step] as StepPlan;
    if (pending.kind === 'event' && pending.withinMs !== undefined && ev.at > st.prevAt + pending.withinMs) {
      rt.groups.delete(group);
      st = undefined;
    }
  }
  if (st) {
    const pending = plan.steps[st.step] as StepPlan;
    if (matches(step, rt, pending, ev, vars)) {
      if (pending.kind === 'event') {
        st.step++;
        st.prevAt = ev.at;
        st.last = seen(ev, keep);
        if (keep) st.data = { ...st.data, ...ev.data };
        advanced(step, rt, group, st, eventInput(ev), profile);
        return;
      }
      // The awaited event came before the deadline: this match ends without firing.
      rt.groups.delete(group);
      step.cancel(key);
      timerArmed = false;
    }
  }

  const first = plan.steps[0] as StepPlan;
  if (!matches(step, rt, first, ev, vars)) return;
  const fresh: SequenceState = { step: 1, prevAt: ev.at, last: seen(ev, keep) };
  if (keep) fresh.data = { ...ev.data };
  advanced(step, rt, group, fresh, eventInput(ev), profile);
  if (timerArmed && fresh.dueAt === undefined) step.cancel(key);
}

/** An absent step's deadline passed without its event: move on, or fire when it was the last step. */
export const onSequenceTimer: TimerStep<SequencePlan, SequenceState> = (step, rt, key, group, profile) => {
  const plan = rt.sc.when;
  const st = rt.groups.get(group);
  if (st?.dueAt === undefined || plan.steps[st.step]?.kind !== 'absent') return;
  if (step.rearmEarly(key, st.last.actor, st.dueAt)) return;
  const deadline = st.dueAt;
  st.step++;
  st.prevAt = deadline;
  delete st.dueAt;
  advanced(step, rt, group, st, timerInput(key, deadline), profile);
};

/** Drops matches whose pending event step can no longer come in time. */
export function pruneSequence(rt: Runtime, now: number): void {
  const plan = rt.sc.when;
  for (const [group, st] of rt.groups) {
    const pending = plan.steps[st.step];
    if (pending?.kind === 'event' && pending.withinMs !== undefined && now > st.prevAt + pending.withinMs)
      rt.groups.delete(group);
  }
}

/** One step of a `sequence` list; undefined when it has problems (all of them reported). */
function parseStep(r: Reader, src: Source, node: YamlNode, i: number): StepPlan | undefined {
  const where = `sequence[${i + 1}]`;
  const f = r.fields(src, node, where, STEP_KEYS);
  if (!f) return undefined;
  const isAbsent = f.has('absent');
  if (isAbsent === f.has('event')) {
    r.problem(src, node, `${where}: give either "event" or "absent"`);
    return undefined;
  }
  let ok = true;
  const event = isAbsent
    ? absentValue({ r, src }, f.get('absent')?.value ?? null, `${where}.absent`)
    : eventName(r, src, f.get('event')?.value ?? null, `${where}.event`);
  const step: StepPlan = { kind: isAbsent ? 'absent' : 'event', event: event ?? '' };
  if (event === undefined) ok = false;
  const whereField = f.get('where');
  if (whereField) {
    // A step's `where` looks at its own event; the rest of the sequence at all of them.
    const all = r.dataEvents;
    r.dataEvents = event !== undefined ? absentTypes(event) : undefined;
    const w = compile(r, src, whereField.value, `${where}.where`, EVENT_VARS, true);
    r.dataEvents = all;
    if (w) step.where = w;
    else ok = false;
  }
  const withinField = f.get('within');
  if (i === 0 && isAbsent) {
    r.problem(
      src,
      node,
      `${where}: a sequence cannot start with an absent step; use "absent" with "for" instead`,
    );
    ok = false;
  } else if (i === 0 && withinField) {
    r.problem(src, withinField.key, `${where}: the first step has no "within" (there is no step before it)`);
    ok = false;
  } else if (isAbsent && !withinField) {
    r.problem(src, node, `${where}: an absent step needs "within" (its deadline after the step before)`);
    ok = false;
  }
  if (withinField && i > 0) {
    const ms = r.duration(src, withinField.value, `${where}.within`, MAX_PERIOD_MS);
    if (ms === undefined) ok = false;
    else step.withinMs = ms;
  }
  return ok ? step : undefined;
}

function parseSequence(w: WhenFields): SequencePlan | undefined {
  const field = w.field('sequence') as Field;
  const src = field.src;
  if (!isSeq(field.value) || field.value.items.length < 2) {
    w.r.problem(
      src,
      field.value,
      'sequence: expected a list of at least two steps, each { event } or { absent, within }',
    );
    return undefined;
  }
  const steps: StepPlan[] = [];
  let ok = true;
  field.value.items.forEach((item, i) => {
    const step = parseStep(w.r, src, w.r.resolve(src, item), i);
    if (step) steps.push(step);
    else ok = false;
  });
  return ok ? { kind: 'sequence', steps } : undefined;
}

function stepBox(step: StepPlan, index: number, show: Show): DiagramBox {
  const after = index === 0 ? undefined : 'then';
  if (step.kind === 'absent') {
    const box: DiagramBox = {
      role: 'absent',
      title: `no ${absentLabel(step.event)}`,
      lines: [`within ${formatDuration(step.withinMs ?? 0)}`],
    };
    if (after) box.arrow = after;
    return box;
  }
  const box = eventBox(absentTypes(step.event), step.where ? show(step.where) : undefined);
  if (step.withinMs !== undefined) box.arrow = `within ${formatDuration(step.withinMs)}`;
  else if (after) box.arrow = after;
  return box;
}

function describeSequence(plan: SequencePlan, show: Show): KindDiagram {
  const flow = plan.steps.map((step, i) => stepBox(step, i, show));
  const parts = plan.steps.map((step) =>
    step.kind === 'event'
      ? `${absentLabel(step.event)}${step.withinMs !== undefined ? ` within ${formatDuration(step.withinMs)}` : ''}`
      : `no ${absentLabel(step.event)} within ${formatDuration(step.withinMs ?? 0)}`,
  );
  return { summary: `Fires on the sequence: ${parts.join(', then ')}.`, flow };
}

/** `step 2 of 3: waiting for B until T`, or `no B until T` for an absent step. */
function explainSequence(plan: SequencePlan, st: SequenceState): GroupExplanation {
  const step = plan.steps[st.step];
  const head = `step ${st.step + 1} of ${plan.steps.length}`;
  const out: GroupExplanation = {
    state: head,
    figures: { step: st.step + 1, of: plan.steps.length },
    sinceAt: st.prevAt,
  };
  if (step === undefined) return out;
  out.figures['waitingFor'] = absentLabel(step.event);
  if (step.kind === 'absent') {
    const dueAt = st.dueAt ?? st.prevAt + (step.withinMs ?? 0);
    out.dueAt = dueAt;
    out.state = `${head}: no ${absentLabel(step.event)} until ${timeText(dueAt)}, then it fires`;
    return out;
  }
  if (step.withinMs === undefined) {
    out.state = `${head}: waiting for ${absentLabel(step.event)}`;
    return out;
  }
  out.untilAt = st.prevAt + step.withinMs;
  out.state = `${head}: waiting for ${absentLabel(step.event)} until ${timeText(out.untilAt)}`;
  return out;
}

export const sequence: ScenarioKind<SequencePlan, SequenceState> = {
  name: 'sequence',
  syntax: { selectors: ['sequence'], keys: [], shared: ['by'] },
  parse: parseSequence,
  listens: (plan) => [...new Set(plan.steps.flatMap((s) => absentTypes(s.event)))],
  horizonMs: (plan) => plan.steps.reduce((sum, s) => sum + (s.withinMs ?? 0), 0),
  onEvent: onSequenceEvent,
  onTimer: onSequenceTimer,
  timerOf: (st) => (st.dueAt === undefined ? undefined : { actor: st.last.actor, dueAt: st.dueAt }),
  prune: pruneSequence,
  // The longest an absent step waits; a sequence without one has no timers.
  timerPeriodMs: (plan) => {
    const absent = plan.steps.filter((s) => s.kind === 'absent').map((s) => s.withinMs ?? 0);
    return absent.length > 0 ? Math.max(...absent) : undefined;
  },
  progress: (plan, st) => {
    const step = plan.steps[st.step];
    const progress = step
      ? `step ${st.step + 1} of ${plan.steps.length}: ${step.kind === 'absent' ? 'no ' : ''}${absentLabel(step.event)}`
      : `step ${st.step + 1} of ${plan.steps.length}`;
    const match: MatchProgress = { progress, sinceAt: st.prevAt };
    if (st.dueAt !== undefined) match.dueAt = st.dueAt;
    return match;
  },
  lastActor: (st) => st.last.actor,
  explain: explainSequence,
  diagram: describeSequence,
};
