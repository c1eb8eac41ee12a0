import type { StepPlan } from '../../rules/index.js';
import type { Event, Profile } from '../../shared/index.js';
import type { ScenarioRuntime, SequenceState } from '../state.js';
import { eventInput, seen, timerInput, timerKey } from '../step.js';
import type { Step, Vars } from '../step.js';

function matches(step: Step, rt: ScenarioRuntime, s: StepPlan, ev: Event, vars: Vars): boolean {
  return s.event === ev.type && step.holds(rt, s.where, vars, ev.actor);
}

/** After a step matched: the sequence is complete, or waits for the next step (arming its deadline if absent). */
function advanced(
  step: Step,
  rt: ScenarioRuntime,
  group: string,
  st: SequenceState,
  input: string,
  profile: Profile | undefined,
): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'sequence') return;
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
export function onSequenceEvent(
  step: Step,
  rt: ScenarioRuntime,
  ev: Event,
  profile: Profile | undefined,
): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'sequence') return;
  const vars = step.baseVars(rt, ev, profile);
  const group = step.group(rt, vars, ev.actor);
  if (group === undefined) return;
  const key = timerKey(rt.sc, group);
  const keep = rt.sc.keepsData;

  let st = rt.groups.get(group) as SequenceState | undefined;
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
export function onSequenceTimer(
  step: Step,
  rt: ScenarioRuntime,
  key: string,
  group: string,
  profile: Profile | undefined,
): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'sequence') return;
  const st = rt.groups.get(group) as SequenceState | undefined;
  if (st?.dueAt === undefined || plan.steps[st.step]?.kind !== 'absent') return;
  if (st.dueAt > step.now) {
    step.schedule(key, st.last.actor, st.dueAt);
    return;
  }
  const deadline = st.dueAt;
  st.step++;
  st.prevAt = deadline;
  delete st.dueAt;
  advanced(step, rt, group, st, timerInput(key, deadline), profile);
}

/** Drops matches whose pending event step can no longer come in time. */
export function pruneSequence(rt: ScenarioRuntime, now: number): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'sequence') return;
  for (const [group, state] of rt.groups) {
    const st = state as SequenceState;
    const pending = plan.steps[st.step];
    if (pending?.kind === 'event' && pending.withinMs !== undefined && now > st.prevAt + pending.withinMs)
      rt.groups.delete(group);
  }
}
