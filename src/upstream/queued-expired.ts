import { isExpired } from '../actions/index.js';
import type { Policy } from '../rules/policy.js';
import type { QueuedAction } from '../shared/index.js';
import type { OutboxSource } from './outbox-source.js';

/**
 * The queued actions whose category's `ttl` has passed at `now`, leaving out `skip` (in flight: already
 * sent, only not acknowledged yet), as the outbox keeps them in memory (`action` only when it holds it whole).
 * Reads the whole outbox, so it is for a periodic sweep, not every send; without a `ttl` in the policy there is
 * nothing to read.
 */
export function queuedExpired(
  outbox: OutboxSource,
  policy: Policy | undefined,
  now: number,
  skip?: ReadonlySet<string>,
): QueuedAction[] {
  if (policy === undefined || policy.ttlMs.size === 0 || outbox.size === 0) return [];
  return outbox.waiting(skip).filter((queued) => isExpired(queued, now, policy));
}
