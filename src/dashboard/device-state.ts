import { kindOf } from '../engine/index.js';
import type { EngineState, GroupState, PendingTimer } from '../engine/index.js';
import type { Scenario } from '../rules/index.js';

/** A scenario part-way through matching for a device: what it has seen and what it waits for. */
export interface OpenMatch {
  scenario: string;
  /** The group the state belongs to: the device itself, or a `by` value the device contributed to. */
  group: string;
  kind: string;
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
    const kind = kindOf(sc.when);
    for (const [group, st] of saved.groups) {
      if (group !== id && kind.lastActor?.(st) !== id) continue;
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

/** A group's state in plain words, as the scenario's kind tells it; undefined when there is nothing to show. */
function describeState(sc: Scenario, group: string, st: GroupState): OpenMatch | undefined {
  const progress = kindOf(sc.when).progress(sc.when, st);
  return progress && { scenario: sc.id, group, kind: sc.when.kind, ...progress };
}
