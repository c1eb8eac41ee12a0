import type { Event, Expression, Profile } from '../../shared/index.js';
import type { GroupState, ScenarioRuntime } from '../state.js';
import type { Step } from '../step.js';
import { EVENT_SELECTORS, selectedEvents } from './event-selector.js';
import type { ScenarioKind } from './kind.js';
import { eventBox, eventsText } from './view.js';

/** `event: T` or `any: [T, U]` alone: each matching event fires. */
export interface TriggerPlan {
  kind: 'trigger';
  events: readonly string[];
  where?: Expression;
}

/** Every event that passes `where` fires; nothing is remembered. */
export function onTriggerEvent(
  step: Step,
  rt: ScenarioRuntime<TriggerPlan>,
  ev: Event,
  profile: Profile | undefined,
): void {
  const group = step.passingGroup(rt, rt.sc.when.where, step.baseVars(rt, ev, profile), ev.actor);
  if (group !== undefined) step.fireOnEvent(rt, group, ev, profile);
}

export const trigger: ScenarioKind<TriggerPlan, GroupState> = {
  name: 'trigger',
  syntax: { selectors: EVENT_SELECTORS, keys: [], shared: ['where', 'by'] },
  parse: (w) => {
    const events = selectedEvents(w);
    if (!events) return undefined;
    return w.where ? { kind: 'trigger', events, where: w.where } : { kind: 'trigger', events };
  },
  listens: (plan) => [...plan.events],
  horizonMs: () => 0,
  stopsAt: (plan) => plan.where,
  onEvent: onTriggerEvent,
  progress: () => undefined,
  diagram: (plan, show) => {
    const flow = [eventBox(plan.events, undefined)];
    if (plan.where) flow.push({ role: 'condition', title: 'only if', lines: [show(plan.where)] });
    return {
      summary: `Fires on every ${eventsText(plan.events)} event${plan.where ? ` where ${show(plan.where)}` : ''}.`,
      flow,
    };
  },
};
