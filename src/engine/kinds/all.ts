import { eventList } from '../../rules/when-fields.js';
import type { WhenFields } from '../../rules/when-fields.js';
import type { Event, Expression, Profile } from '../../shared/index.js';
import type { ScenarioRuntime, SeenEvent } from '../state.js';
import { seen } from '../step.js';
import type { Step } from '../step.js';
import type { ScenarioKind } from './kind.js';
import { formatDuration, listText, timeText } from './view.js';
import type { KindDiagram, Show } from './view.js';

/** `all: [...]` + `within`: every listed event within `withinMs` of each other, in any order. */
export interface AllPlan {
  kind: 'all';
  events: readonly string[];
  where?: Expression;
  withinMs: number;
}

/** When each listed event last came (null: not yet, or too long ago), and what it carried. */
export interface AllState {
  ats: Array<number | null>;
  data?: Array<Record<string, unknown> | null>;
  last: SeenEvent;
}

type Runtime = ScenarioRuntime<AllPlan, AllState>;

/**
 * `all: [...] within T`: remembers when each listed event last came, per group; when every one of them
 * came within T of each other (inclusive), in any order, the scenario fires and the group starts afresh.
 * `last` is the event that completed the match, with the data of all of them merged in arrival order.
 */
export function onAllEvent(step: Step, rt: Runtime, ev: Event, profile: Profile | undefined): void {
  const plan = rt.sc.when;
  const i = plan.events.indexOf(ev.type);
  if (i < 0) return;
  const group = step.passingGroup(rt, plan.where, step.baseVars(rt, ev, profile), ev.actor);
  if (group === undefined) return;
  const keep = rt.sc.keepsData;

  const st: AllState = rt.groups.get(group) ?? {
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
  step.fireOnEvent(rt, group, ev, profile, { ...seen(ev, false), data });
}

/** Drops groups whose every event is older than the window. */
export function pruneAll(rt: Runtime, now: number): void {
  const plan = rt.sc.when;
  for (const [group, st] of rt.groups) {
    if (st.ats.every((at) => at === null || at < now - plan.withinMs)) rt.groups.delete(group);
  }
}

function parseAll(w: WhenFields): AllPlan | undefined {
  const events = eventList(w.r, w.src, w.value('all'), 'all', 2);
  if (!w.required('within', 'how close together the events must come, such as 1m')) return undefined;
  const withinMs = w.durationMs('within');
  if (!events || withinMs === undefined) return undefined;
  return w.where ? { kind: 'all', events, where: w.where, withinMs } : { kind: 'all', events, withinMs };
}

function describeAll(plan: AllPlan, show: Show): KindDiagram {
  return {
    summary:
      `Fires when ${listText(plan.events)} have all come within ${formatDuration(plan.withinMs)}` +
      ` of each other, in any order${plan.where ? `, each where ${show(plan.where)}` : ''}.`,
    flow: [
      {
        role: 'event',
        title: 'all of, in any order',
        lines: [...plan.events, ...(plan.where ? [`where ${show(plan.where)}`] : [])],
      },
      { role: 'window', title: `within ${formatDuration(plan.withinMs)}`, lines: ['of each other'] },
    ],
  };
}

export const all: ScenarioKind<AllPlan, AllState> = {
  name: 'all',
  syntax: { selectors: ['all'], keys: ['within'], shared: ['where', 'by'] },
  parse: parseAll,
  listens: (plan) => [...plan.events],
  horizonMs: (plan) => plan.withinMs,
  onEvent: onAllEvent,
  prune: pruneAll,
  progress: (plan, { ats }) => {
    const seen = plan.events.filter((_, i) => ats[i] !== null && ats[i] !== undefined);
    if (seen.length === 0) return undefined;
    const times = ats.filter((a): a is number => typeof a === 'number');
    return {
      progress: `${seen.length} of ${plan.events.length}: ${seen.join(', ')}`,
      sinceAt: Math.min(...times),
    };
  },
  lastActor: (st) => st.last.actor,
  explain: (plan, { ats }, now) => {
    // Those seen too long ago to complete a match with an event arriving now no longer count.
    const counted = (at: number | null | undefined): at is number =>
      typeof at === 'number' && at >= now - plan.withinMs;
    const seen = plan.events.filter((_, i) => counted(ats[i]));
    if (seen.length === 0) return undefined;
    const missing = plan.events.filter((_, i) => !counted(ats[i]));
    const sinceAt = Math.min(...ats.filter(counted));
    const untilAt = sinceAt + plan.withinMs;
    return {
      state: `${seen.length} of ${plan.events.length} (${seen.join(', ')}); waiting for ${missing.join(', ')} until ${timeText(untilAt)}`,
      figures: { seen: seen.length, of: plan.events.length, waitingFor: missing.join(',') },
      sinceAt,
      untilAt,
    };
  },
  diagram: describeAll,
};
