import type { AggregatePlan } from '../../rules/index.js';
import type { Event, Profile } from '../../shared/index.js';
import type { AggregateState, ScenarioRuntime } from '../state.js';
import { eventInput, seen } from '../step.js';
import type { Step, Vars } from '../step.js';

/** A flood of events cannot grow one group's window without bound; the oldest entries give way. */
export const MAX_WINDOW_ENTRIES = 10_000;

const NUMERIC = new Set(['sum', 'avg', 'min', 'max']);

function compute(a: AggregatePlan, values: unknown[], n: number): unknown {
  switch (a.fn) {
    case 'count':
      return n;
    case 'first':
      return values[0] ?? null;
    case 'last':
      return values[n - 1] ?? null;
    case 'sum':
    case 'avg': {
      let sum = 0;
      for (const v of values) sum += v as number;
      return a.fn === 'sum' ? sum : sum / n;
    }
    case 'min':
    case 'max': {
      let best = values[0] as number;
      for (const v of values)
        best = a.fn === 'min' ? Math.min(best, v as number) : Math.max(best, v as number);
      return best;
    }
  }
}

/**
 * `window` + `aggregate` + `having`: each matching event joins its group's sliding window (events at most
 * `window` old), the aggregates are computed over it and `having` is evaluated; the scenario fires on
 * every event for which `having` holds. An event whose aggregate argument cannot be evaluated, or is not
 * a number where one is needed, is left out of the window.
 */
export function onAggregateEvent(
  step: Step,
  rt: ScenarioRuntime,
  ev: Event,
  profile: Profile | undefined,
): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'aggregate') return;
  const vars = step.baseVars(rt, ev, profile);
  if (!step.holds(rt, plan.where, vars, ev.actor)) return;
  const group = step.group(rt, vars, ev.actor);
  if (group === undefined) return;

  const row: unknown[] = [];
  for (const a of plan.aggregates) {
    if (!a.arg) {
      row.push(null);
      continue;
    }
    const r = step.evaluate(rt, a.arg, vars, ev.actor, 'aggregate');
    if (!r.ok) return;
    let v = r.value;
    if (NUMERIC.has(a.fn)) {
      if (typeof v === 'bigint') v = Number(v);
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        step.error(
          rt,
          ev.actor,
          'aggregate',
          `${a.fn}(${a.arg.source}): ${JSON.stringify(v) ?? 'nothing'} is not a number`,
        );
        return;
      }
    }
    row.push(v);
  }

  const st = (rt.groups.get(group) as AggregateState | undefined) ?? {
    ats: [],
    values: plan.aggregates.map(() => []),
  };
  const from = ev.at - plan.windowMs;
  let drop = 0;
  while (drop < st.ats.length && (st.ats[drop] as number) < from) drop++;
  drop = Math.max(drop, st.ats.length + 1 - MAX_WINDOW_ENTRIES);
  if (drop > 0) {
    st.ats.splice(0, drop);
    for (const col of st.values) col.splice(0, drop);
  }
  st.ats.push(ev.at);
  // count() needs no column of its own: the times are its values.
  row.forEach((v, i) => {
    if (plan.aggregates[i]?.arg) st.values[i]?.push(v);
  });
  rt.groups.set(group, st);

  const n = st.ats.length;
  const extra: Vars = {};
  plan.aggregates.forEach((a, i) => (extra[a.name] = compute(a, st.values[i] ?? [], n)));
  const last = seen(ev, true);
  if (plan.having) {
    const havingVars: Vars = { ...vars, last, group, ...extra };
    if (!step.holds(rt, plan.having, havingVars, ev.actor, 'having')) return;
  }
  step.fire(rt, { group, actor: ev.actor, eventAt: ev.at, input: eventInput(ev), last, profile, extra });
}

/** Drops groups whose every event has left the window. */
export function pruneAggregate(rt: ScenarioRuntime, now: number): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'aggregate') return;
  for (const [group, state] of rt.groups) {
    const st = state as AggregateState;
    const newest = st.ats[st.ats.length - 1];
    if (newest === undefined || newest < now - plan.windowMs) rt.groups.delete(group);
  }
}
