import type { EngineState, GroupState, PendingTimer } from '../engine/index.js';
import type { Scenario } from '../rules/index.js';
import { formatDuration } from './scenario-diagram.js';

/** A scenario part-way through matching for a device: what it has seen and what it waits for. */
export interface OpenMatch {
  scenario: string;
  /** The group the state belongs to: the device itself, or a `by` value the device contributed to. */
  group: string;
  kind: Scenario['when']['kind'];
  /** Plain words: `2 of 3 within 2m`, `waiting for connected`. */
  progress: string;
  /** The earliest event still counted, when that is known. */
  sinceAt?: number;
  /** When the scenario's timer falls due, if it has one. */
  dueAt?: number;
}

export interface DeviceTimer {
  scenario: string;
  dueAt: number;
}

/**
 * The open matches of device `id` in the engine's state: groups keyed by the device, and groups whose
 * latest event came from it (a `by: profile.site` group the device just added to).
 */
export function openMatchesOf(id: string, scenarios: readonly Scenario[], state: EngineState): OpenMatch[] {
  const byId = new Map(scenarios.map((sc) => [sc.id, sc]));
  const out: OpenMatch[] = [];
  for (const saved of state.scenarios) {
    const sc = byId.get(saved.id);
    if (!sc) continue;
    for (const [group, st] of saved.groups) {
      if (group !== id && lastActor(st) !== id) continue;
      const match = describeState(sc, group, st);
      if (match) out.push(match);
    }
  }
  return out;
}

/** The pending timers that fire for device `id`. */
export function timersOf(id: string, pending: readonly PendingTimer[]): DeviceTimer[] {
  const out: DeviceTimer[] = [];
  for (const t of pending) {
    if (t.actor !== id) continue;
    const i = t.timer.indexOf(':');
    out.push({ scenario: i > 0 ? t.timer.slice(0, i) : t.timer, dueAt: t.dueAt });
  }
  return out.sort((a, b) => a.dueAt - b.dueAt);
}

// The shapes of the group states the dashboard reads, by scenario kind (the engine's own types stay internal).
interface Windowed {
  ats: number[];
}
interface Waiting {
  dueAt?: number;
  last: { at: number };
}
interface Stepping {
  step: number;
  prevAt: number;
  dueAt?: number;
}
interface Collecting {
  ats: Array<number | null>;
}

function lastActor(st: GroupState): string | undefined {
  return 'last' in st ? st.last.actor : undefined;
}

function describeState(sc: Scenario, group: string, st: GroupState): OpenMatch | undefined {
  const base = { scenario: sc.id, group, kind: sc.when.kind };
  const when = sc.when;
  switch (when.kind) {
    case 'trigger':
      return undefined;
    case 'count': {
      const { ats } = st as Windowed;
      if (ats.length === 0) return undefined;
      const within = when.withinMs !== undefined ? ` within ${formatDuration(when.withinMs)}` : '';
      return { ...base, progress: `${ats.length} of ${when.count}${within}`, sinceAt: ats[0] ?? 0 };
    }
    case 'aggregate': {
      const { ats } = st as Windowed;
      if (ats.length === 0) return undefined;
      return {
        ...base,
        progress: `${ats.length} ${ats.length === 1 ? 'event' : 'events'} in the ${formatDuration(when.windowMs)} window`,
        sinceAt: ats[0] ?? 0,
      };
    }
    case 'silence': {
      const s = st as Waiting;
      const what = when.any ? 'any event' : when.absent;
      const match: OpenMatch = { ...base, progress: `waiting for ${what}`, sinceAt: s.last.at };
      if (s.dueAt !== undefined) match.dueAt = s.dueAt;
      return match;
    }
    case 'sequence': {
      const s = st as Stepping;
      const step = when.steps[s.step];
      const progress = step
        ? `step ${s.step + 1} of ${when.steps.length}: ${step.kind === 'absent' ? `no ${step.event}` : step.event}`
        : `step ${s.step + 1} of ${when.steps.length}`;
      const match: OpenMatch = { ...base, progress, sinceAt: s.prevAt };
      if (s.dueAt !== undefined) match.dueAt = s.dueAt;
      return match;
    }
    case 'all': {
      const { ats } = st as Collecting;
      const seen = when.events.filter((_, i) => ats[i] !== null && ats[i] !== undefined);
      if (seen.length === 0) return undefined;
      const times = ats.filter((a): a is number => typeof a === 'number');
      return {
        ...base,
        progress: `${seen.length} of ${when.events.length}: ${seen.join(', ')}`,
        sinceAt: Math.min(...times),
      };
    }
  }
}
