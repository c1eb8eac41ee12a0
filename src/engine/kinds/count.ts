import { EVENT_VARS } from '../../rules/when-fields.js';
import type { WhenFields } from '../../rules/when-fields.js';
import type { Event, Expression, Profile } from '../../shared/index.js';
import type { ScenarioRuntime } from '../state.js';
import type { Step } from '../step.js';
import { EVENT_SELECTORS, selectedEvents } from './event-selector.js';
import type { ScenarioKind } from './kind.js';
import { eventBox, eventsText, formatDuration } from './view.js';
import { leftWindow, pruneWindows } from './window.js';
import type { GroupExplanation, KindDiagram, Show } from './view.js';
import { timeText } from './view.js';

const MAX_COUNT = 100_000;

/** `count` (optionally `within`, `distinct`): a sliding count per group, reset when it fires. */
export interface CountPlan {
  kind: 'count';
  events: readonly string[];
  where?: Expression;
  count: number;
  withinMs?: number;
  distinct?: Expression;
}

/** Arrival times in the window (oldest first) and, with `distinct`, their values. */
export interface CountState {
  ats: number[];
  keys?: string[];
}

type Runtime = ScenarioRuntime<CountPlan, CountState>;

/**
 * `count` (with `within`, `distinct`): a sliding window of matching events per group. When it holds
 * `count` of them (distinct values with `distinct`) the scenario fires and the window starts afresh.
 * An event exactly `within` after the oldest one still counts.
 */
export function onCountEvent(step: Step, rt: Runtime, ev: Event, profile: Profile | undefined): void {
  const plan = rt.sc.when;
  const vars = step.baseVars(rt, ev, profile);
  const group = step.passingGroup(rt, plan.where, vars, ev.actor);
  if (group === undefined) return;
  let distinct: string | undefined;
  if (plan.distinct) {
    distinct = step.key(rt, plan.distinct, vars, ev.actor, 'distinct');
    if (distinct === undefined) return;
  }

  const st: CountState = rt.groups.get(group) ?? { ats: [] };
  if (plan.withinMs !== undefined) {
    const drop = leftWindow(st.ats, ev.at - plan.withinMs);
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
    step.fireOnEvent(rt, group, ev, profile);
  } else {
    rt.groups.set(group, st);
  }
}

/** Drops groups whose every event has left the window. */
export function pruneCount(rt: Runtime, now: number): void {
  const withinMs = rt.sc.when.withinMs;
  if (withinMs !== undefined) pruneWindows(rt.groups, now - withinMs);
}

function parseCount(w: WhenFields): CountPlan | undefined {
  const events = selectedEvents(w);
  if (!events) return undefined;
  if (!w.required('count', 'how many events')) return undefined;
  const count = w.r.integer(w.srcOf('count'), w.value('count'), 'count', 1, MAX_COUNT);
  const withinMs = w.durationMs('within');
  let distinct: Expression | undefined;
  if (w.has('distinct')) distinct = w.compile('distinct', EVENT_VARS, false);
  if (count === undefined || (w.has('within') && withinMs === undefined) || (w.has('distinct') && !distinct))
    return undefined;
  const plan: CountPlan = { kind: 'count', events, count };
  if (w.where) plan.where = w.where;
  if (withinMs !== undefined) plan.withinMs = withinMs;
  if (distinct) plan.distinct = distinct;
  return plan;
}

function describeCount(plan: CountPlan, show: Show): KindDiagram {
  const window = plan.withinMs !== undefined ? ` within ${formatDuration(plan.withinMs)}` : '';
  const lines = plan.distinct ? [`each from a different ${show(plan.distinct)}`] : [];
  if (plan.withinMs === undefined) lines.push('counted from the last firing');
  return {
    summary:
      `Fires when ${plan.count} ${eventsText(plan.events)} event${plan.count === 1 ? '' : 's'}` +
      `${plan.where ? ` where ${show(plan.where)}` : ''}` +
      `${plan.distinct ? `, each from a different ${show(plan.distinct)},` : ''}` +
      ` ${plan.withinMs !== undefined ? `come${window}` : 'have come'}; then it counts again from zero.`,
    flow: [
      eventBox(plan.events, plan.where ? show(plan.where) : undefined),
      { role: 'window', title: `${plan.count} ${plan.count === 1 ? 'time' : 'times'}${window}`, lines },
    ],
  };
}

/** `3 of 5 within 10m`, counting only the events still in the window at `now`. */
function explainCount(plan: CountPlan, st: CountState, now: number): GroupExplanation | undefined {
  const from = plan.withinMs === undefined ? 0 : leftWindow(st.ats, now - plan.withinMs);
  const n = st.ats.length - from;
  if (n <= 0) return undefined;
  const sinceAt = st.ats[from] as number;
  const within = plan.withinMs !== undefined ? ` within ${formatDuration(plan.withinMs)}` : '';
  const distinct = plan.distinct ? ' distinct' : '';
  const out: GroupExplanation = {
    state: `count ${n} of ${plan.count}${distinct}${within}`,
    figures: { count: n, of: plan.count },
    sinceAt,
  };
  if (plan.withinMs !== undefined) {
    out.untilAt = sinceAt + plan.withinMs;
    out.state += `; the oldest leaves the window at ${timeText(out.untilAt)}`;
  }
  return out;
}

export const count: ScenarioKind<CountPlan, CountState> = {
  name: 'count',
  syntax: { selectors: EVENT_SELECTORS, keys: ['count', 'within', 'distinct'], shared: ['where', 'by'] },
  parse: parseCount,
  listens: (plan) => [...plan.events],
  horizonMs: (plan) => plan.withinMs ?? 0,
  stopsAt: (plan) => plan.where,
  onEvent: onCountEvent,
  prune: pruneCount,
  progress: (plan, { ats }) => {
    if (ats.length === 0) return undefined;
    const within = plan.withinMs !== undefined ? ` within ${formatDuration(plan.withinMs)}` : '';
    return { progress: `${ats.length} of ${plan.count}${within}`, sinceAt: ats[0] ?? 0 };
  },
  explain: explainCount,
  diagram: describeCount,
};
