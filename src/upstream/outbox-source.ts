import type { Action } from '../shared/index.js';

/** What the uplink needs of the outbox: the next actions in drain order, and removal once acknowledged. */
export interface OutboxSource {
  /** The first `n` actions in drain order, leaving out the ids in `skip`. */
  next(n: number, skip?: ReadonlySet<string>): Action[];
  /** Forgets an action at once; resolves when that reached the disk. */
  remove(id: string): Promise<void>;
  readonly size: number;
}
