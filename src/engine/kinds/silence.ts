import type { Event, Profile } from '../../shared/index.js';
import type { ScenarioRuntime, SilenceState } from '../state.js';
import { seen, timerInput, timerKey } from '../step.js';
import type { Step } from '../step.js';

/**
 * `absent … for`: each awaited event (for `any`, each event from the device itself) restarts the group's
 * silence timer; the engine is fed only those events.
 */
export function onSilenceEvent(
  step: Step,
  rt: ScenarioRuntime,
  ev: Event,
  profile: Profile | undefined,
): void {
  const plan = rt.sc.when;
  if (plan.kind !== 'silence') return;
  const group = rt.sc.by ? step.group(rt, step.baseVars(rt, ev, profile), ev.actor) : ev.actor;
  if (group === undefined) return;
  const dueAt = ev.at + plan.forMs;
  const st: SilenceState = { dueAt, last: seen(ev, rt.sc.keepsData) };
  rt.groups.set(group, st);
  step.schedule(timerKey(rt.sc, group), ev.actor, dueAt);
}

/** The silence lasted: fire once, at the deadline, and wait for the next event to arm again. */
export function onSilenceTimer(
  step: Step,
  rt: ScenarioRuntime,
  key: string,
  group: string,
  profile: Profile | undefined,
): void {
  const st = rt.groups.get(group) as SilenceState | undefined;
  if (!st) return;
  if (st.dueAt > step.now) {
    step.schedule(key, st.last.actor, st.dueAt);
    return;
  }
  rt.groups.delete(group);
  step.fire(rt, {
    group,
    actor: st.last.actor,
    eventAt: st.dueAt,
    input: timerInput(key, st.dueAt),
    last: st.last,
    profile,
  });
}
