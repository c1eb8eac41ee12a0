import { eventList, eventName } from '../../rules/when-fields.js';
import type { WhenFields } from '../../rules/when-fields.js';

/** `event: T` or `any: [T, U]`: how trigger, count and aggregate scenarios name their events. */
export const EVENT_SELECTORS: readonly string[] = ['event', 'any'];

/** The events a `when` introduced by `event` or `any` names; its other keys must then be of one kind only. */
export function selectedEvents(w: WhenFields): string[] | undefined {
  let events: string[] | undefined;
  if (w.selector === 'event') {
    const name = eventName(w.r, w.src, w.value('event'), 'event');
    events = name === undefined ? undefined : [name];
  } else {
    events = eventList(w.r, w.src, w.value('any'), 'any', 1);
  }
  if (!events) return undefined;
  return w.exclusive() ? events : undefined;
}
