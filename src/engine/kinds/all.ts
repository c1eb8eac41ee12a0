import type { Event, Profile } from '../../shared/index.js';
import type { AllState, ScenarioRuntime } from '../state.js';
import { eventInput, seen } from '../step.js';
import type { Step } from '../step.js';

/**
 * `all: [...] within T`: remembers when each listed event last came, per group; when every one of them
 * came within T of each other (inclusive), in any order, the scenario fires and the group starts afresh.
 * `last` is the event that completed the match, with the data of all of them merged in arrival order.
 */
export function onAllEvent(step: Step, rt: ScenarioRuntime, ev: Event, profile: Profile | undefined): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'all') return;
  const i = plan.events.indexOf(ev.type);
  if (i < 0) return;
  const vars = step.baseVars(rt, ev, profile);
  if (!step.holds(rt, plan.where, vars, ev.actor)) return;
  const group = step.group(rt, vars, ev.actor);
  if (group === undefined) return;
  const keep = rt.sc.keepsData;

  const st = (rt.groups.get(group) as AllState | undefined) ?? {
    ats: plan.events.map(() => null),
    last: seen(ev, false),
  };
  if (keep) st.data ??= plan.events.map(() => null);
  st.ats[i] = ev.at;
  if (st.data) st.data[i] = ev.data;
  st.last = seen(ev, false);
  const from = ev.at - plan.withinMs;
  st.ats.forEach((at, j) => {
    if (at !== null && at < from) {
      st.ats[j] = null;
      if (st.data) st.data[j] = null;
    }
  });
  if (st.ats.some((at) => at === null)) {
    rt.groups.set(group, st);
    return;
  }
  rt.groups.delete(group);
  let data: Record<string, unknown> = ev.data;
  if (st.data) {
    const order = st.ats.map((at, j) => ({ at: at as number, j })).sort((a, b) => a.at - b.at || a.j - b.j);
    data = {};
    for (const { j } of order) Object.assign(data, st.data[j]);
    Object.assign(data, ev.data);
  }
  step.fire(rt, {
    group,
    actor: ev.actor,
    eventAt: ev.at,
    input: eventInput(ev),
    last: { ...seen(ev, false), data },
    profile,
  });
}

/** Drops groups whose every event is older than the window. */
export function pruneAll(rt: ScenarioRuntime, now: number): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'all') return;
  for (const [group, state] of rt.groups) {
    const st = state as AllState;
    if (st.ats.every((at) => at === null || at < now - plan.withinMs)) rt.groups.delete(group);
  }
}
