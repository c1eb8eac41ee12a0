import type { Event, Expression, Profile } from '../../shared/index.js';
import type { GroupState, ScenarioRuntime } from '../state.js';
import { eventInput, seen } from '../step.js';
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
