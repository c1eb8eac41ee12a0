import { isMap, isScalar } from 'yaml';
import { compileTyped } from '../../rules/cel.js';
import type { FieldType } from '../../rules/schema.js';
import { EVENT_VARS, IDENTIFIER, MAX_PERIOD_MS, RESERVED, THEN_VARS } from '../../rules/when-fields.js';
import type { WhenFields } from '../../rules/when-fields.js';
import { show as showNode } from '../../rules/yaml-reader.js';
import type { Field, Reader, Source, YamlNode } from '../../rules/yaml-reader.js';
import type { Event, Expression, Profile } from '../../shared/index.js';
import type { ScenarioRuntime, SeenEvent } from '../state.js';
import { seen } from '../step.js';
import type { Step, Vars } from '../step.js';
import { EVENT_SELECTORS, selectedEvents } from './event-selector.js';
import { addExact, exactPartials, exactSum, exactTotal } from './exact-sum.js';
import type { ScenarioKind } from './kind.js';
import { eventBox, eventsText, formatDuration } from './view.js';
import type { DiagramBox, GroupExplanation, KindDiagram, Show } from './view.js';
import { calendarLabel, calendarWindow, windowStartAt } from './calendar.js';
import type { CalendarWindow } from './calendar.js';
import { pruneWindows } from './window.js';
import { AggregateGroups } from './aggregate-groups.js';
import {
  beginStep,
  keepSums,
  oldestAt,
  ringCount,
  ringLayout,
  ringOf,
  ringPush,
  ringShift,
  ringSum,
  ringValue,
  stateOfRing,
  sumsOf,
} from './aggregate-ring.js';
import type { Ring, RingLayout } from './aggregate-ring.js';
import { fastCondition, fastDataNumber } from '../fast-condition.js';

export type AggregateFn = 'count' | 'sum' | 'avg' | 'min' | 'max' | 'first' | 'last';
const AGGREGATE_FNS: readonly AggregateFn[] = ['count', 'sum', 'avg', 'min', 'max', 'first', 'last'];

export interface AggregatePlan {
  name: string;
  fn: AggregateFn;
  /** Absent for `count()`. */
  arg?: Expression;
}

/** One of a scenario's `windows`: the last `ms` (sliding), or since the latest boundary of a calendar. */
export interface NamedWindow {
  name: string;
  ms?: number;
  calendar?: CalendarWindow;
}

/**
 * `window` (or `windows`) + `aggregate` (+ `having`): aggregates per group over a sliding or calendar window, or
 * over several named ones, evaluated on each event.
 */
export interface AggregateWindowPlan {
  kind: 'aggregate';
  events: readonly string[];
  where?: Expression;
  /** How far back the window reaches: its length, or for a calendar window its period and an hour of DST. */
  windowMs: number;
  /** `window: {every, at, tz}`: the window holds the events since its latest boundary. */
  calendar?: CalendarWindow;
  /** `windows: {recent: 5m, baseline: 24h}`: each name is bound to the aggregates over its window. */
  windows?: readonly NamedWindow[];
  aggregates: readonly AggregatePlan[];
  having?: Expression;
}

/**
 * The earliest arrival time a window holds at `now`; a calendar window's boundaries are where the wall clock,
 * `wallOffsetMs` ahead of gateway time, shows them.
 */
function startOf(w: { ms?: number; calendar?: CalendarWindow }, now: number, wallOffsetMs: number): number {
  return w.calendar ? windowStartAt(w.calendar, now, wallOffsetMs) : now - (w.ms ?? 0);
}

/** The earliest arrival time the group's state must keep at `now`: that of the widest window. */
function keepFrom(plan: AggregateWindowPlan, now: number, wallOffsetMs: number): number {
  if (!plan.windows)
    return plan.calendar ? windowStartAt(plan.calendar, now, wallOffsetMs) : now - plan.windowMs;
  let from = Infinity;
  for (const w of plan.windows) from = Math.min(from, startOf(w, now, wallOffsetMs));
  return from;
}

/**
 * Arrival times in the window and, per aggregate, the values they carried. Entries before `start` have left the
 * window; they are cut off a block at a time, so that an event costs the same whatever the window holds.
 */
export interface AggregateState {
  ats: number[];
  values: unknown[][];
  /** How many entries at the front have left the window; absent: none (as in checkpoints before it). */
  start?: number;
  /**
   * Per aggregate, for `sum` and `avg`, the exact running sum of the window's values (see exact-sum.ts); null
   * for the others, and where it has to be summed afresh (absent in checkpoints before it, or overflowed).
   */
  sums?: Array<number[] | null>;
}

type Runtime = ScenarioRuntime<AggregateWindowPlan, AggregateState>;

/** A flood of events cannot grow one group's window without bound; the oldest entries give way. */
export const MAX_WINDOW_ENTRIES = 10_000;

const NUMERIC = new Set(['sum', 'avg', 'min', 'max']);
/** Left entries are cut off once there are at least this many, and more than the window holds. */
const COMPACT_AT = 64;
/**
 * A window of at most this many entries is kept in arrays of its exact length, without running sums: the state of a
 * device that spoke a few times costs a few hundred bytes, not the spare capacity of growing arrays (about 150 bytes
 * an array). Adding an entry then copies the window, at most this many values per column.
 */
export const SMALL_WINDOW = 16;

/**
 * The window's sum of an aggregate's values, from its running sum. Where there is none it is summed afresh, and kept
 * as a running sum only for a window past `SMALL_WINDOW` entries: a small window costs less memory summed afresh, and
 * gives the same sum (exact, whatever the order).
 */
function windowSum(st: AggregateState, i: number, values: unknown[], from: number): number {
  let partials = st.sums?.[i] ?? undefined;
  if (partials === undefined && values.length - from <= SMALL_WINDOW) {
    const sum = exactSum(values, from);
    if (sum !== undefined) return sum;
  } else if (partials === undefined) {
    partials = exactPartials(values, from);
    (st.sums ??= [])[i] = partials ?? null;
  }
  if (partials !== undefined) return exactTotal(partials);
  // An intermediate sum overflowed: the plain sum, as large as it gets.
  let sum = 0;
  for (let k = from; k < values.length; k++) sum += values[k] as number;
  return sum;
}

function compute(a: AggregatePlan, st: AggregateState, i: number, from: number): unknown {
  const values = st.values[i] ?? [];
  const n = st.ats.length - from;
  switch (a.fn) {
    case 'count':
      return n;
    case 'first':
      return values[from] ?? null;
    case 'last':
      return values[values.length - 1] ?? null;
    case 'sum':
      return windowSum(st, i, values, from);
    case 'avg':
      return windowSum(st, i, values, from) / n;
    case 'min':
    case 'max': {
      let best = values[from] as number;
      for (let k = from + 1; k < values.length; k++)
        best = a.fn === 'min' ? Math.min(best, values[k] as number) : Math.max(best, values[k] as number);
      return best;
    }
  }
}

/** The column of an aggregate without an argument (`count()` reads the times): empty, never written, one for all. */
const NO_VALUES: unknown[] = Object.freeze([]) as unknown as unknown[];

/** A fresh group's state: empty columns; running sums are made when needed. */
function emptyWindow(plan: AggregateWindowPlan): AggregateState {
  return { ats: [], values: plan.aggregates.map((a) => (a.arg ? [] : NO_VALUES)), start: 0 };
}

/**
 * Moves the window's start past the entries before `from` and the oldest ones over the cap, then adds `row`. After a
 * step of the wall clock a calendar window's start moves with it: the entries before the new boundary leave.
 * `inPlace`: the state's arrays are the caller's to change (AggregateGroups' reused state), not copied for a small
 * window.
 */
function slide(
  plan: AggregateWindowPlan,
  st: AggregateState,
  at: number,
  row: readonly unknown[],
  wallOffsetMs: number,
  inPlace = false,
): number {
  let start = st.start ?? 0;
  const capped = st.ats.length + 1 - MAX_WINDOW_ENTRIES;
  const from = keepFrom(plan, at, wallOffsetMs);
  while (start < st.ats.length && (start < capped || (st.ats[start] as number) < from)) {
    for (let i = 0; i < st.values.length; i++) {
      const partials = st.sums?.[i];
      if (partials && !addExact(partials, -((st.values[i] as unknown[])[start] as number)))
        (st.sums as Array<number[] | null>)[i] = null;
    }
    start++;
  }
  if (st.ats.length - start < SMALL_WINDOW) {
    return inPlace ? appendInPlace(plan, st, start, at, row) : appendSmall(plan, st, start, at, row);
  }
  if (start >= COMPACT_AT && start * 2 >= st.ats.length) {
    cutFront(st.ats, start);
    for (const col of st.values) if (col.length > 0) cutFront(col, start);
    start = 0;
  }
  st.start = start;
  st.ats.push(at);
  for (let i = 0; i < plan.aggregates.length; i++) {
    if (!plan.aggregates[i]?.arg) continue;
    const v = row[i];
    (st.values[i] as unknown[]).push(v);
    const partials = st.sums?.[i];
    if (partials && !addExact(partials, v as number)) (st.sums as Array<number[] | null>)[i] = null;
  }
  return start;
}

/** The entries from `start` on, and `x`, in an array of that exact length. */
function withEntry<T>(list: readonly T[], start: number, x: T): T[] {
  const out = new Array<T>(list.length - start + 1);
  for (let k = start; k < list.length; k++) out[k - start] = list[k] as T;
  out[out.length - 1] = x;
  return out;
}

/** Adds `row` to a window holding fewer than `SMALL_WINDOW` entries from `start` on: copied, the left ones cut off. */
function appendSmall(
  plan: AggregateWindowPlan,
  st: AggregateState,
  start: number,
  at: number,
  row: readonly unknown[],
): number {
  st.ats = withEntry(st.ats, start, at);
  for (let i = 0; i < plan.aggregates.length; i++) {
    if (!plan.aggregates[i]?.arg) continue;
    const v = row[i];
    st.values[i] = withEntry(st.values[i] as unknown[], start, v);
    const partials = st.sums?.[i];
    if (partials && !addExact(partials, v as number)) (st.sums as Array<number[] | null>)[i] = null;
  }
  st.start = 0;
  return 0;
}

/** As `appendSmall`, into the state's own arrays: the left entries cut off, `row` pushed. */
function appendInPlace(
  plan: AggregateWindowPlan,
  st: AggregateState,
  start: number,
  at: number,
  row: readonly unknown[],
): number {
  if (start > 0) cutFront(st.ats, start);
  st.ats.push(at);
  for (let i = 0; i < plan.aggregates.length; i++) {
    if (!plan.aggregates[i]?.arg) continue;
    const col = st.values[i] as unknown[];
    if (start > 0) cutFront(col, start);
    const v = row[i];
    col.push(v);
    const partials = st.sums?.[i];
    if (partials && !addExact(partials, v as number)) (st.sums as Array<number[] | null>)[i] = null;
  }
  st.start = 0;
  return 0;
}

/** Drops the first `n` entries. A loop: `copyWithin` moves an element twenty times slower (Node 24). */
function cutFront(list: unknown[], n: number): void {
  const kept = list.length - n;
  for (let k = 0; k < kept; k++) list[k] = list[k + n];
  list.length = kept;
}

/** The values of the event for each aggregate (null for `count()`); undefined (reported) when one has none. */
function rowOf(step: Step, rt: Runtime, vars: Vars, actor: string, row: unknown[]): boolean {
  const plan = rt.sc.when;
  for (let i = 0; i < plan.aggregates.length; i++) {
    const a = plan.aggregates[i] as AggregatePlan;
    if (!a.arg) {
      row[i] = null;
      continue;
    }
    // `avg(data.temp)`: a number read as CEL would give it, without the interpreter.
    const fast = fastDataNumber(a.arg, vars.data);
    if (fast !== undefined) {
      row[i] = fast === 0 ? 0 : fast;
      continue;
    }
    const r = step.evaluate(rt, a.arg, vars, actor, 'aggregate');
    if (!r.ok) return false;
    let v = r.value;
    if (NUMERIC.has(a.fn)) {
      if (typeof v === 'bigint') v = Number(v);
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        step.error(
          rt,
          actor,
          'aggregate',
          `${a.fn}(${a.arg.source}): ${JSON.stringify(v) ?? 'nothing'} is not a number`,
        );
        return false;
      }
    }
    // -0 as 0: checkpoints (CBOR) keep no negative zero, and a restored window must give what the live one gives.
    row[i] = v === 0 ? 0 : v;
  }
  return true;
}

/** The aggregates over the entries from `from` on, by name (into `out` when given). */
function values(plan: AggregateWindowPlan, st: AggregateState, from: number, out: Vars = {}): Vars {
  for (let i = 0; i < plan.aggregates.length; i++) {
    const a = plan.aggregates[i] as AggregatePlan;
    out[a.name] = compute(a, st, i, from);
  }
  return out;
}

/**
 * Each named window bound to its aggregates. The state holds the widest window with its running sums; a narrower
 * one is summed afresh over its own entries (exactly, so it gives the same whether live or restored).
 */
function windowValues(
  plan: AggregateWindowPlan,
  windows: readonly NamedWindow[],
  st: AggregateState,
  from: number,
  now: number,
  wallOffsetMs: number,
): Vars {
  const out: Vars = {};
  for (const w of windows) {
    const start = startOf(w, now, wallOffsetMs);
    let first = from;
    while (first < st.ats.length && (st.ats[first] as number) < start) first++;
    if (first === from) {
      out[w.name] = values(plan, st, from);
      continue;
    }
    // Summed afresh: a view of the window's own entries, without running sums.
    const narrow: AggregateState = { ats: st.ats, values: st.values, start: first };
    out[w.name] = values(plan, narrow, first);
  }
  return out;
}

/** The event's values, reused from one event to the next (the engine runs one event at a time). */
const scratchRow: unknown[] = [];

/**
 * What a scenario's event is judged with, reused from one event to the next: its aggregates (with `windows`, made
 * afresh: they are objects `having` and `then` may keep), the variables of `having`, and its `last` there. None of
 * them outlives the event: firing copies what it keeps (`Step.fire`, `seen`).
 */
interface Scratch {
  extra: Vars;
  having: Vars;
  last: SeenEvent;
}

const scratches = new WeakMap<AggregateWindowPlan, Scratch>();

function scratchOf(plan: AggregateWindowPlan): Scratch {
  let s = scratches.get(plan);
  if (s === undefined) {
    const last: SeenEvent = { actor: '', type: '', at: 0, source: 'device', data: {} };
    s = { extra: {}, having: {}, last };
    scratches.set(plan, s);
  }
  return s;
}

/** `having`'s variables: as `{ ...vars, last, group, ...extra }`, written into the scratch object. */
function havingVars(s: Scratch, vars: Vars, ev: Event, group: string, extra: Vars): Vars {
  const { having, last } = s;
  for (const k in vars) having[k] = vars[k];
  last.actor = ev.actor;
  last.type = ev.type;
  last.at = ev.at;
  last.source = ev.source;
  last.data = ev.data;
  having.last = last;
  having.group = group;
  for (const k in extra) having[k] = extra[k];
  return having;
}

/** Whether the event's values can go into a ring: numbers, for every aggregate with an argument. */
function numbersOnly(layout: RingLayout, row: readonly unknown[]): boolean {
  const { columnOf } = layout;
  for (let i = 0; i < columnOf.length; i++) if (columnOf[i] !== 0 && typeof row[i] !== 'number') return false;
  return true;
}

/** `slide` for a window kept in a ring: returns the ring it is in then (a new one when it grew or shrank). */
function slideRing(
  plan: AggregateWindowPlan,
  layout: RingLayout,
  r: Ring,
  at: number,
  row: readonly unknown[],
  wallOffsetMs: number,
): Ring {
  const from = keepFrom(plan, at, wallOffsetMs);
  for (let n = ringCount(r); n > 0 && (n >= MAX_WINDOW_ENTRIES || oldestAt(layout, r) < from); n--)
    ringShift(layout, r);
  return ringPush(layout, r, at, row);
}

/** The aggregates over a ring's entries, by name, into `out`: what `values` gives for the same window. */
function ringValues(plan: AggregateWindowPlan, layout: RingLayout, r: Ring, out: Vars): Vars {
  const n = ringCount(r);
  for (let i = 0; i < plan.aggregates.length; i++) {
    const a = plan.aggregates[i] as AggregatePlan;
    let v: number;
    switch (a.fn) {
      case 'count':
        v = n;
        break;
      case 'first':
        v = ringValue(layout, r, 0, i);
        break;
      case 'last':
        v = ringValue(layout, r, n - 1, i);
        break;
      case 'sum':
        v = ringSum(layout, r, i, SMALL_WINDOW);
        break;
      case 'avg':
        v = ringSum(layout, r, i, SMALL_WINDOW) / n;
        break;
      case 'min':
      case 'max':
        v = ringValue(layout, r, 0, i);
        for (let k = 1; k < n; k++)
          v =
            a.fn === 'min'
              ? Math.min(v, ringValue(layout, r, k, i))
              : Math.max(v, ringValue(layout, r, k, i));
    }
    out[a.name] = v;
  }
  return out;
}

/**
 * The event joins its group's window in the aggregate groups, and the aggregates over it: a window kept in a ring is
 * changed there; any other is read for update, changed and set again, or moved into a ring once it is past the packed
 * size and all numbers.
 */
function stepGroups(
  plan: AggregateWindowPlan,
  groups: AggregateGroups,
  group: string,
  at: number,
  wallOffsetMs: number,
  out: Vars,
): Vars {
  const layout = groups.layout;
  const found = groups.forStep(group, layout !== undefined && numbersOnly(layout, scratchRow));
  // A ring is handed out only when asked for, which takes a layout: anything else is a state.
  if (layout !== undefined && found instanceof Float64Array) {
    const ring = found;
    beginStep();
    const r = slideRing(plan, layout, ring, at, scratchRow, wallOffsetMs);
    ringValues(plan, layout, r, out);
    // A running sum with more partials than the ring has room for: the window goes on as a plain state.
    if (!keepSums(layout, r)) groups.set(group, stateOfRing(layout, r, NO_VALUES, sumsOf(layout, r)));
    else if (r !== ring) groups.storeRing(group, r);
    return out;
  }
  // A small window's state read into arrays the groups reuse, changed in place and packed again by `set`.
  const st = (found as AggregateState | undefined) ?? emptyWindow(plan);
  const from = slide(plan, st, at, scratchRow, wallOffsetMs, groups.isReused(st));
  const extra = plan.windows
    ? windowValues(plan, plan.windows, st, from, at, wallOffsetMs)
    : values(plan, st, from, out);
  const moved =
    layout !== undefined && st.ats.length - from > SMALL_WINDOW ? ringOf(layout, st, from) : undefined;
  // Set again once changed (running sums included): the groups' map packs a small window.
  if (moved !== undefined) groups.storeRing(group, moved);
  else groups.set(group, st);
  return extra;
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
  if (!rowOf(step, rt, vars, ev.actor, scratchRow)) return;

  const groups = rt.groups;
  const scratch = scratchOf(plan);
  let extra: Vars;
  if (groups instanceof AggregateGroups) {
    extra = stepGroups(plan, groups, group, ev.at, step.wallOffsetMs, scratch.extra);
  } else {
    const st = groups.get(group) ?? emptyWindow(plan);
    const from = slide(plan, st, ev.at, scratchRow, step.wallOffsetMs);
    extra = plan.windows
      ? windowValues(plan, plan.windows, st, from, ev.at, step.wallOffsetMs)
      : values(plan, st, from, scratch.extra);
    groups.set(group, st);
  }
  if (plan.having) {
    // `avgTemp > 1000`: read from the aggregates alone, which `having` sees as they are (they are bound last); any
    // other operand is not among them, and the condition is judged with all its variables.
    const quick = fastCondition(plan.having)?.(extra);
    if (quick === false) return;
    if (quick === undefined) {
      const judged = havingVars(scratch, vars, ev, group, extra);
      if (!step.holds(rt, plan.having, judged, ev.actor, 'having')) return;
    }
  }
  step.fireOnEvent(rt, group, ev, profile, seen(ev, true), extra);
}

/** An aggregate over the entries from `from` on, read without touching the state (no running sums). */
function plainValue(a: AggregatePlan, st: AggregateState, i: number, from: number): unknown {
  const values = (st.values[i] ?? []).slice(from) as number[];
  const n = st.ats.length - from;
  switch (a.fn) {
    case 'count':
      return n;
    case 'first':
      return values[0] ?? null;
    case 'last':
      return values[values.length - 1] ?? null;
    case 'sum':
    case 'avg': {
      let sum = 0;
      for (const v of values) sum += v;
      return a.fn === 'sum' ? sum : sum / n;
    }
    case 'min':
      return Math.min(...values);
    case 'max':
      return Math.max(...values);
  }
}

/** A figure as the explanation shows it: numbers to at most 3 decimals. */
function figure(v: unknown): number | string | boolean | null {
  if (typeof v === 'number') return Number.isInteger(v) ? v : Math.round(v * 1000) / 1000;
  if (typeof v === 'string' || typeof v === 'boolean' || v === null) return v;
  return JSON.stringify(v) ?? null;
}

/** `avg 61.2, n 4 over the 5m window (since T)`: the aggregates over the events still in the window at `now`. */
function explainAggregate(
  plan: AggregateWindowPlan,
  st: AggregateState,
  now: number,
  wallOffsetMs = 0,
): GroupExplanation | undefined {
  const cutoff = keepFrom(plan, now, wallOffsetMs);
  let from = st.start ?? 0;
  while (from < st.ats.length && (st.ats[from] as number) < cutoff) from++;
  if (from >= st.ats.length) return undefined;
  const figures: GroupExplanation['figures'] = {};
  plan.aggregates.forEach((a, i) => (figures[a.name] = figure(plainValue(a, st, i, from))));
  const sinceAt = st.ats[from] as number;
  const values = plan.aggregates.map((a) => `${a.name} ${String(figures[a.name])}`).join(', ');
  const having = plan.having ? `; fires when ${plan.having.source}` : '';
  return {
    state: `${values} over ${windowWords(plan)} (${st.ats.length - from} events)${having}`,
    figures,
    sinceAt,
    ...(plan.calendar || plan.windows ? {} : { untilAt: sinceAt + plan.windowMs }),
  };
}

/** `the 5m window`, `the calendar window 1d at 00:00 Europe/Berlin`, or the widest of named windows. */
function windowWords(plan: AggregateWindowPlan): string {
  if (plan.calendar) return `the calendar window ${calendarLabel(plan.calendar)}`;
  if (plan.windows) return `the widest of the windows ${plan.windows.map((w) => w.name).join(', ')}`;
  return `the ${formatDuration(plan.windowMs)} window`;
}

/** Drops groups whose every event has left the window. */
export function pruneAggregate(rt: Runtime, now: number, wallOffsetMs = 0): void {
  const from = keepFrom(rt.sc.when, now, wallOffsetMs);
  if (rt.groups instanceof AggregateGroups) rt.groups.pruneBefore(from);
  else pruneWindows(rt.groups, from);
}

const HOUR_MS = 3_600_000;
const CALENDAR_KEYS = ['every', 'at', 'tz'];

/** A window: a duration (`10m`, sliding), or `{ every: 1d, at: "00:00", tz: Europe/Berlin }` (calendar). */
function parseSpan(
  r: Reader,
  src: Source,
  node: YamlNode,
  where: string,
): Omit<NamedWindow, 'name'> | undefined {
  if (!isMap(node)) {
    const ms = r.duration(src, node, where, MAX_PERIOD_MS);
    return ms === undefined ? undefined : { ms };
  }
  const f = r.fields(src, node, where, CALENDAR_KEYS);
  if (!f) return undefined;
  const every = f.get('every');
  if (!every) {
    r.problem(src, node, `${where}: a calendar window needs "every" (1d, or hours such as 6h)`);
    return undefined;
  }
  const everyMs = r.duration(src, every.value, `${where}.every`, MAX_PERIOD_MS);
  const at = f.get('at');
  const atText = at ? r.string(src, at.value, `${where}.at`, '"00:00"') : '00:00';
  const tz = f.get('tz');
  const tzText = tz ? r.string(src, tz.value, `${where}.tz`, 'Europe/Berlin') : 'UTC';
  if (everyMs === undefined || atText === undefined || tzText === undefined) return undefined;
  const cal = calendarWindow(everyMs, atText, tzText);
  if (!cal.ok) {
    const field = cal.problem.startsWith('every') ? every : cal.problem.startsWith('at') ? at : tz;
    r.problem(src, field?.value ?? node, `${where}.${cal.problem}`);
    return undefined;
  }
  return { calendar: cal.window };
}

/** How far back a window reaches: its length, or a calendar period and the hour a change of the clocks adds. */
function reachMs(span: Omit<NamedWindow, 'name'>): number {
  return span.calendar ? span.calendar.everyMs + HOUR_MS : (span.ms ?? 0);
}

/** `windows: {recent: 5m, baseline: 24h}`: names bound in `having` and `then`, each to the aggregates over it. */
function parseWindows(w: WhenFields): NamedWindow[] | undefined {
  const field = w.field('windows') as Field;
  const { r, src } = { r: w.r, src: field.src };
  if (!isMap(field.value) || field.value.items.length === 0) {
    r.problem(
      src,
      field.value,
      'windows: expected a mapping of name to window, such as { recent: 5m, baseline: 24h }',
    );
    return undefined;
  }
  const out: NamedWindow[] = [];
  let ok = true;
  for (const pair of field.value.items) {
    const key = r.resolve(src, pair.key);
    const name = isScalar(key) ? key.value : undefined;
    if (typeof name !== 'string' || !IDENTIFIER.test(name) || RESERVED.has(name)) {
      r.problem(
        src,
        key ?? field.value,
        `windows: ${showNode(key)} cannot name a window (use an identifier that is not ${[...RESERVED].join(', ')})`,
      );
      ok = false;
      continue;
    }
    const span = parseSpan(r, src, r.resolve(src, pair.value), `windows.${name}`);
    if (span) out.push({ name, ...span });
    else ok = false;
  }
  return ok ? out : undefined;
}

/** The type of each aggregate, for type-checking what reads a named window (`recent.avg`). */
function windowType(aggs: readonly AggregatePlan[]): FieldType {
  const fields = new Map<string, FieldType>(
    aggs.map((a) => [a.name, a.fn === 'first' || a.fn === 'last' ? { kind: 'any' } : { kind: 'number' }]),
  );
  return { kind: 'object', fields };
}

function parseAggregateWindow(w: WhenFields): AggregateWindowPlan | undefined {
  const events = selectedEvents(w);
  if (!events) return undefined;
  if (w.has('window') && w.has('windows')) {
    w.r.problem(
      w.srcOf('windows'),
      w.field('windows')?.key,
      'when: give either "window" or "windows", not both',
    );
    return undefined;
  }
  const many = w.has('windows');
  if (
    (!many && !w.required('window', 'how far back to aggregate, such as 10m')) ||
    !w.required('aggregate', 'named functions')
  )
    return undefined;
  const span = many ? undefined : parseSpan(w.r, w.srcOf('window'), w.value('window'), 'window');
  const windows = many ? parseWindows(w) : undefined;
  const aggs = parseAggregates(w.r, w.field('aggregate') as Field);
  if ((!span && !windows) || !aggs) return undefined;
  let having: Expression | undefined;
  if (w.has('having')) {
    const names = windows ? windows.map((n) => n.name) : aggs.map((a) => a.name);
    const declared = windows ? new Map(windows.map((n) => [n.name, windowType(aggs)])) : undefined;
    having = w.compile('having', [...THEN_VARS, ...names], true, declared);
    if (!having) return undefined;
  }
  const windowMs = windows ? Math.max(...windows.map(reachMs)) : reachMs(span ?? {});
  const plan: AggregateWindowPlan = { kind: 'aggregate', events, windowMs, aggregates: aggs };
  if (span?.calendar) plan.calendar = span.calendar;
  if (windows) plan.windows = windows;
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

/** The names an `aggregate` mapping binds (or, with `windows`, the window names), read without validating it. */
function aggregateNames(r: Reader, when: Field): string[] {
  if (!isMap(when.value)) return [];
  const windows = when.value.items.find((p) => isScalar(p.key) && p.key.value === 'windows');
  const named = windows ? r.resolve(when.src, windows.value) : null;
  if (isMap(named)) {
    return named.items
      .map((p) => (isScalar(p.key) ? String(p.key.value) : ''))
      .filter((n) => IDENTIFIER.test(n));
  }
  const pair = when.value.items.find((p) => isScalar(p.key) && p.key.value === 'aggregate');
  const agg = pair ? r.resolve(when.src, pair.value) : null;
  if (!isMap(agg)) return [];
  return agg.items.map((p) => (isScalar(p.key) ? String(p.key.value) : '')).filter((n) => IDENTIFIER.test(n));
}

/** `the last 10m`, `every 1d at 00:00 (Europe/Berlin)`. */
function spanLabel(span: { ms?: number; calendar?: CalendarWindow }): string {
  return span.calendar
    ? `since the boundary ${calendarLabel(span.calendar)}`
    : `the last ${formatDuration(span.ms ?? 0)}`;
}

/** The window as words: `the last 10m`, or `recent (the last 5m), baseline (the last 24h)`. */
function planWindows(plan: AggregateWindowPlan): string {
  if (plan.windows) return plan.windows.map((w) => `${w.name} (${spanLabel(w)})`).join(', ');
  return spanLabel(plan.calendar ? { calendar: plan.calendar } : { ms: plan.windowMs });
}

function describeAggregate(plan: AggregateWindowPlan, show: Show): KindDiagram {
  const over = planWindows(plan);
  const flow: DiagramBox[] = [
    eventBox(plan.events, plan.where ? show(plan.where) : undefined),
    {
      role: 'window',
      title:
        plan.windows || plan.calendar ? `over ${over}` : `over the last ${formatDuration(plan.windowMs)}`,
      lines: plan.aggregates.map((a) => `${a.name} = ${a.fn}(${a.arg ? show(a.arg) : ''})`),
    },
  ];
  if (plan.having) flow.push({ role: 'condition', title: 'only if', lines: [show(plan.having)] });
  const names = plan.aggregates.map((a) => a.name).join(', ');
  return {
    summary:
      `On every ${eventsText(plan.events)} event, computes ${names} over ${over}` +
      `${plan.having ? ` and fires when ${show(plan.having)}` : ' and fires'}.`,
    flow,
  };
}

export const aggregate: ScenarioKind<AggregateWindowPlan, AggregateState> = {
  name: 'aggregate',
  syntax: {
    selectors: EVENT_SELECTORS,
    keys: ['window', 'windows', 'aggregate', 'having'],
    shared: ['where', 'by'],
  },
  parse: parseAggregateWindow,
  boundNames: aggregateNames,
  firingExpressions: (plan) => (plan.having ? [plan.having] : []),
  listens: (plan) => [...plan.events],
  horizonMs: (plan) => plan.windowMs,
  stopsAt: (plan) => plan.where,
  onEvent: onAggregateEvent,
  // A small window packed into one array: at a high churn of devices, most of them hold a few readings.
  groups: (plan) =>
    new AggregateGroups(
      plan.aggregates.map((a) => a.arg !== undefined),
      NO_VALUES,
      SMALL_WINDOW,
      // Named windows each read their own stretch of the arrays.
      plan.windows ? undefined : ringLayout(plan.aggregates),
    ),
  prune: pruneAggregate,
  progress: (plan, { ats, start = 0 }) => {
    const n = ats.length - start;
    if (n <= 0) return undefined;
    const window =
      plan.windows || plan.calendar ? planWindows(plan) : `the ${formatDuration(plan.windowMs)} window`;
    return {
      progress: `${n} ${n === 1 ? 'event' : 'events'} in ${window}`,
      sinceAt: ats[start] ?? 0,
    };
  },
  explain: explainAggregate,
  diagram: describeAggregate,
};
