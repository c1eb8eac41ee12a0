import type { Candidate } from '../shared/index.js';

function compareText(a: string, b: string): number {
  // Code-unit order, not localeCompare: the same on every gateway whatever its locale.
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Orders candidates of one instant: highest priority first, then by scenario id, actor and action id, so that
 * the same candidates are always weighed in the same order.
 */
export function byPriority(a: Candidate, b: Candidate): number {
  return (
    b.action.priority - a.action.priority ||
    compareText(a.action.scenario, b.action.scenario) ||
    compareText(a.action.actor, b.action.actor) ||
    compareText(a.action.id, b.action.id)
  );
}
