import type { Action } from '../shared/index.js';

/** What the uplink needs of the outbox: the next actions in drain order, removal when expired or acknowledged. */
export interface OutboxSource {
  /** The first `n` actions in drain order, leaving out the ids in `skip`. */
  next(n: number, skip?: ReadonlySet<string>): Action[];
  /** Forgets an action at once; resolves when that reached the disk. */
  remove(id: string): Promise<void>;
  /** The cloud acknowledged the action at `atMs`: forgets it at once, and does not queue its id again. */
  markDelivered(id: string, atMs: number): Promise<void>;
  readonly size: number;
}
