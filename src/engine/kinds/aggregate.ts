import { isMap, isScalar } from 'yaml';
import { compileTyped } from '../../rules/cel.js';
import { EVENT_VARS, IDENTIFIER, RESERVED, THEN_VARS } from '../../rules/when-fields.js';
import type { WhenFields } from '../../rules/when-fields.js';
import { show as showNode } from '../../rules/yaml-reader.js';
import type { Field, Reader } from '../../rules/yaml-reader.js';
import type { Event, Expression, Profile } from '../../shared/index.js';
import type { ScenarioRuntime } from '../state.js';
import { seen } from '../step.js';
import type { Step, Vars } from '../step.js';
import { EVENT_SELECTORS, selectedEvents } from './event-selector.js';
import type { ScenarioKind } from './kind.js';
import { eventBox, eventsText, formatDuration } from './view.js';
import type { DiagramBox, KindDiagram, Show } from './view.js';
import { leftWindow, pruneWindows } from './window.js';

export type AggregateFn = 'count' | 'sum' | 'avg' | 'min' | 'max' | 'first' | 'last';
const AGGREGATE_FNS: readonly AggregateFn[] = ['count', 'sum', 'avg', 'min', 'max', 'first', 'last'];

export interface AggregatePlan {
  name: string;
  fn: AggregateFn;
  /** Absent for `count()`. */
  arg?: Expression;
}

/** `window` + `aggregate` (+ `having`): sliding-window aggregates per group, evaluated on each event. */
export interface AggregateWindowPlan {
  kind: 'aggregate';
  events: readonly string[];
  where?: Expression;
  windowMs: number;
  aggregates: readonly AggregatePlan[];
  having?: Expression;
}

/** Arrival times in the window and, per aggregate, the values they carried. */
export interface AggregateState {
  ats: number[];
  values: unknown[][];
}

type Runtime = ScenarioRuntime<AggregateWindowPlan, AggregateState>;

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
export function onAggregateEvent(step: Step, rt: Runtime, ev: Event, profile: Profile | undefined): void {
  const plan = rt.sc.when;
  const vars = step.baseVars(rt, ev, profile);
  const group = step.passingGroup(rt, plan.where, vars, ev.actor);
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

  const st = rt.groups.get(group) ?? {
    ats: [],
    values: plan.aggregates.map(() => []),
  };
  const drop = Math.max(leftWindow(st.ats, ev.at - plan.windowMs), st.ats.length + 1 - MAX_WINDOW_ENTRIES);
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
  step.fireOnEvent(rt, group, ev, profile, last, extra);
}

/** Drops groups whose every event has left the window. */
export function pruneAggregate(rt: Runtime, now: number): void {
  pruneWindows(rt.groups, now - rt.sc.when.windowMs);
}

function parseAggregateWindow(w: WhenFields): AggregateWindowPlan | undefined {
  const events = selectedEvents(w);
  if (!events) return undefined;
  if (
    !w.required('window', 'how far back to aggregate, such as 10m') ||
    !w.required('aggregate', 'named functions')
  )
    return undefined;
  const windowMs = w.durationMs('window');
  const aggs = parseAggregates(w.r, w.field('aggregate') as Field);
  if (windowMs === undefined || !aggs) return undefined;
  let having: Expression | undefined;
  if (w.has('having')) {
    having = w.compile('having', [...THEN_VARS, ...aggs.map((a) => a.name)], true);
    if (!having) return undefined;
  }
  const plan: AggregateWindowPlan = { kind: 'aggregate', events, windowMs, aggregates: aggs };
  if (w.where) plan.where = w.where;
  if (having) plan.having = having;
  return plan;
}

/** One `name: fn(arg)` of an `aggregate` mapping; undefined (reported) when it is not one. */
function parseAggregate(
  r: Reader,
  field: Field,
  keyNode: unknown,
  valueNode: unknown,
): AggregatePlan | undefined {
  const src = field.src;
  const key = r.resolve(src, keyNode);
  const node = r.resolve(src, valueNode);
  const name = isScalar(key) ? key.value : undefined;
  if (typeof name !== 'string' || !IDENTIFIER.test(name) || RESERVED.has(name)) {
    r.problem(
      src,
      key ?? field.value,
      `aggregate: ${showNode(key)} cannot name an aggregate (use an identifier that is not ${[...RESERVED].join(', ')})`,
    );
    return undefined;
  }
  const text = r.string(src, node, `aggregate.${name}`, 'avg(data.temp)');
  if (text === undefined) return undefined;
  const m = /^\s*([a-z]+)\s*\(([\s\S]*)\)\s*$/.exec(text);
  const fn = m?.[1] as AggregateFn | undefined;
  if (!m || fn === undefined || !AGGREGATE_FNS.includes(fn)) {
    r.problem(
      src,
      node,
      `aggregate.${name}: expected one of ${AGGREGATE_FNS.map((a) => `${a}(…)`).join(', ')}, not "${text}"`,
    );
    return undefined;
  }
  const argSource = (m[2] ?? '').trim();
  if (fn === 'count') {
    if (argSource === '') return { name, fn };
    r.problem(src, node, `aggregate.${name}: count() takes no argument; filter with "where"`);
    return undefined;
  }
  if (argSource === '') {
    r.problem(src, node, `aggregate.${name}: ${fn}() needs an expression, such as ${fn}(data.temp)`);
    return undefined;
  }
  const c = compileTyped(argSource, { variables: EVENT_VARS });
  if (!c.ok) {
    r.problem(src, node, `aggregate.${name}: ${c.message}`);
    return undefined;
  }
  return { name, fn, arg: c.expression };
}

function parseAggregates(r: Reader, field: Field): AggregatePlan[] | undefined {
  if (!isMap(field.value)) {
    r.problem(
      field.src,
      field.value,
      'aggregate: expected a mapping of name to function, such as avgTemp: avg(data.temp)',
    );
    return undefined;
  }
  const out: AggregatePlan[] = [];
  let ok = true;
  for (const pair of field.value.items) {
    const a = parseAggregate(r, field, pair.key, pair.value);
    if (a) out.push(a);
    else ok = false;
  }
  if (ok && out.length === 0) {
    r.problem(field.src, field.value, 'aggregate: name at least one function');
    return undefined;
  }
  return ok ? out : undefined;
}

/** The names an `aggregate` mapping binds, read without validating it. */
function aggregateNames(r: Reader, when: Field): string[] {
  if (!isMap(when.value)) return [];
  const pair = when.value.items.find((p) => isScalar(p.key) && p.key.value === 'aggregate');
  const agg = pair ? r.resolve(when.src, pair.value) : null;
  if (!isMap(agg)) return [];
  return agg.items.map((p) => (isScalar(p.key) ? String(p.key.value) : '')).filter((n) => IDENTIFIER.test(n));
}

function describeAggregate(plan: AggregateWindowPlan, show: Show): KindDiagram {
  const flow: DiagramBox[] = [
    eventBox(plan.events, plan.where ? show(plan.where) : undefined),
    {
      role: 'window',
      title: `over the last ${formatDuration(plan.windowMs)}`,
      lines: plan.aggregates.map((a) => `${a.name} = ${a.fn}(${a.arg ? show(a.arg) : ''})`),
    },
  ];
  if (plan.having) flow.push({ role: 'condition', title: 'only if', lines: [show(plan.having)] });
  const names = plan.aggregates.map((a) => a.name).join(', ');
  return {
    summary:
      `On every ${eventsText(plan.events)} event, computes ${names} over the last ` +
      `${formatDuration(plan.windowMs)}${plan.having ? ` and fires when ${show(plan.having)}` : ' and fires'}.`,
    flow,
  };
}

export const aggregate: ScenarioKind<AggregateWindowPlan, AggregateState> = {
  name: 'aggregate',
  syntax: { selectors: EVENT_SELECTORS, keys: ['window', 'aggregate', 'having'], shared: ['where', 'by'] },
  parse: parseAggregateWindow,
  boundNames: aggregateNames,
  firingExpressions: (plan) => (plan.having ? [plan.having] : []),
  listens: (plan) => [...plan.events],
  horizonMs: (plan) => plan.windowMs,
  stopsAt: (plan) => plan.where,
  onEvent: onAggregateEvent,
  prune: pruneAggregate,
  progress: (plan, { ats }) => {
    if (ats.length === 0) return undefined;
    return {
      progress: `${ats.length} ${ats.length === 1 ? 'event' : 'events'} in the ${formatDuration(plan.windowMs)} window`,
      sinceAt: ats[0] ?? 0,
    };
  },
  diagram: describeAggregate,
};
