import type { Policy } from '../rules/policy.js';
import type { Action } from '../shared/index.js';

/** What expiry reads of an action (the outbox keeps these in memory of every action it holds). */
export type Expiring = Pick<Action, 'category' | 'decidedAt' | 'clockOffsetMs'>;

/**
 * True once an action has waited its category's `ttl` since it was decided: the uplink then drops it (reason
 * `ttl`) rather than send it late. An action lives for `[decidedAt, decidedAt + ttl)` on gateway time; without a ttl for its
 * category, or without a policy, it never expires.
 */
export function isExpired(action: Expiring, now: number, policy: Policy | undefined): boolean {
  const ttlMs = policy?.ttlMs.get(action.category);
  return ttlMs !== undefined && now >= decidedOnGatewayAt(action) + ttlMs;
}

/**
 * When an action was decided on gateway time, which `now` is given in: its ttl is not moved by a step of the wall
 * clock while it waits (src/runtime/clock.ts).
 */
export function decidedOnGatewayAt(action: Expiring): number {
  return action.decidedAt - (action.clockOffsetMs ?? 0);
}
