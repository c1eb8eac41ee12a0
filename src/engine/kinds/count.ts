import type { Event, Profile } from '../../shared/index.js';
import type { CountState, ScenarioRuntime } from '../state.js';
import { eventInput, seen } from '../step.js';
import type { Step } from '../step.js';

/**
 * `count` (with `within`, `distinct`): a sliding window of matching events per group. When it holds
 * `count` of them (distinct values with `distinct`) the scenario fires and the window starts afresh.
 * An event exactly `within` after the oldest one still counts.
 */
export function onCountEvent(step: Step, rt: ScenarioRuntime, ev: Event, profile: Profile | undefined): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'count') return;
  const vars = step.baseVars(rt, ev, profile);
  if (!step.holds(rt, plan.where, vars, ev.actor)) return;
  const group = step.group(rt, vars, ev.actor);
  if (group === undefined) return;
  let distinct: string | undefined;
  if (plan.distinct) {
    distinct = step.key(rt, plan.distinct, vars, ev.actor, 'distinct');
    if (distinct === undefined) return;
  }

  const st = (rt.groups.get(group) as CountState | undefined) ?? { ats: [] };
  if (plan.withinMs !== undefined) {
    const from = ev.at - plan.withinMs;
    let drop = 0;
    while (drop < st.ats.length && (st.ats[drop] as number) < from) drop++;
    if (drop > 0) {
      st.ats.splice(0, drop);
      st.keys?.splice(0, drop);
    }
  }
  if (distinct !== undefined) {
    const keys = (st.keys ??= []);
    const i = keys.indexOf(distinct);
    if (i >= 0) {
      keys.splice(i, 1);
      st.ats.splice(i, 1);
    }
    keys.push(distinct);
    st.ats.push(ev.at);
  } else {
    st.ats.push(ev.at);
    // Only the latest `count` can complete a match.
    if (st.ats.length > plan.count) st.ats.shift();
  }

  if (st.ats.length >= plan.count) {
    rt.groups.delete(group);
    step.fire(rt, {
      group,
      actor: ev.actor,
      eventAt: ev.at,
      input: eventInput(ev),
      last: seen(ev, true),
      profile,
    });
  } else {
    rt.groups.set(group, st);
  }
}

/** Drops groups whose every event has left the window. */
export function pruneCount(rt: ScenarioRuntime, now: number): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'count' || plan.withinMs === undefined) return;
  for (const [group, state] of rt.groups) {
    const st = state as CountState;
    const newest = st.ats[st.ats.length - 1];
    if (newest === undefined || newest < now - plan.withinMs) rt.groups.delete(group);
  }
}
