import type { Event, Profile } from '../../shared/index.js';
import type { ScenarioRuntime } from '../state.js';
import { eventInput, seen } from '../step.js';
import type { Step } from '../step.js';

/** `event`/`any` alone: every event that passes `where` fires; nothing is remembered. */
export function onTriggerEvent(
  step: Step,
  rt: ScenarioRuntime,
  ev: Event,
  profile: Profile | undefined,
): void {
  if (rt.sc.when.kind !== 'trigger') return;
  const vars = step.baseVars(rt, ev, profile);
  if (!step.holds(rt, rt.sc.when.where, vars, ev.actor)) return;
  const group = step.group(rt, vars, ev.actor);
  if (group === undefined) return;
  step.fire(rt, {
    group,
    actor: ev.actor,
    eventAt: ev.at,
    input: eventInput(ev),
    last: seen(ev, true),
    profile,
  });
}
