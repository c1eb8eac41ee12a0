import { kindOf, type GroupExplanation, type GroupState } from '../engine/index.js';
import type { Scenario } from '../rules/index.js';
import { explainDecision, type DecisionExplanation, type ReasonContext } from './decision-reasons.js';
import type { ActionEntry } from './recent-actions.js';
import { describeScenario } from './scenario-diagram.js';

export type { DecisionExplanation } from './decision-reasons.js';

/** Where a device stands in one scenario, and what the scenario last decided for it. */
export interface ScenarioExplanation {
  scenario: string;
  kind: string;
  description: string;
  /** When the scenario fires, in one sentence. */
  summary: string;
  /** Its groups the device is in (its own, or a `by` group its event went to last), each as the kind explains it. */
  groups: Array<GroupExplanation & { group: string }>;
  /** `nothing pending` or the groups' states, one line. */
  state: string;
  /** Its latest decisions for the device, newest first. */
  decisions: DecisionExplanation[];
}

/** `GET /api/devices/{id}/explain`, `vigil explain DEVICE`. */
export interface DeviceExplanation {
  device: string;
  /** The gateway time the state was read at. */
  at: number;
  scenarios: ScenarioExplanation[];
  /** How many decisions are kept per device, and for how many of the latest decided devices. */
  decisionsKept: { perDevice: number; devices: number };
}

/** A group without a kind's `explain`: its `progress`, as the dashboard shows it. */
function groupOf(
  sc: Scenario,
  st: GroupState,
  now: number,
  wallOffsetMs: number,
): GroupExplanation | undefined {
  const kind = kindOf(sc.when);
  if (kind.explain) return kind.explain(sc.when, st, now, wallOffsetMs);
  const p = kind.progress(sc.when, st);
  if (p === undefined) return undefined;
  const out: GroupExplanation = { state: p.progress, figures: {} };
  if (p.sinceAt !== undefined) out.sinceAt = p.sinceAt;
  if (p.dueAt !== undefined) out.dueAt = p.dueAt;
  return out;
}

/**
 * Explains device `id` in every scenario: the groups it is in, read from the engine's state as it is (not copied;
 * nothing may step the engine meanwhile), and its decisions kept (`decisions`, oldest first), newest first.
 */
export function explainDevice(
  id: string,
  now: number,
  scenarios: readonly Scenario[],
  state: { scenarios: ReadonlyArray<{ id: string; groups: Iterable<readonly [string, GroupState]> }> },
  decisions: readonly ActionEntry[],
  reasons: ReasonContext,
  /** How far the wall clock the engine's calendar windows follow is ahead of gateway time (`Step.wallOffsetMs`). */
  wallOffsetMs = 0,
): Omit<DeviceExplanation, 'decisionsKept'> {
  const groupsOf = new Map(state.scenarios.map((s) => [s.id, s.groups]));
  const out: ScenarioExplanation[] = scenarios.map((sc) => {
    const kind = kindOf(sc.when);
    const groups: ScenarioExplanation['groups'] = [];
    for (const [group, st] of groupsOf.get(sc.id) ?? []) {
      if (group !== id && kind.lastActor?.(st) !== id) continue;
      const g = groupOf(sc, st, now, wallOffsetMs);
      if (g) groups.push({ group, ...g });
    }
    const own = decisions.filter((d) => d.action.scenario === sc.id);
    const state =
      groups.length === 0
        ? 'nothing pending'
        : groups.map((g) => (g.group === id ? g.state : `${g.group}: ${g.state}`)).join('; ');
    return {
      scenario: sc.id,
      kind: sc.when.kind,
      description: sc.description,
      summary: describeScenario(sc).summary,
      groups,
      state,
      decisions: own.map((d) => explainDecision(d, decisions, reasons)).reverse(),
    };
  });
  return { device: id, at: now, scenarios: out };
}
