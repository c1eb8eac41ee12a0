import type { Action, QueuedAction } from '../shared/index.js';

/** What the uplink needs of the outbox: the next actions in drain order, removal when expired or acknowledged. */
export interface OutboxSource {
  /**
   * The first `n` actions in drain order, leaving out the ids in `skip`; fewer when the next ones are being
   * read back from disk (`loading`).
   */
  next(n: number, skip?: ReadonlySet<string>): Action[];
  /** Set while the actions after those `next` handed out are being read back; settles once they can be had. */
  readonly loading: Promise<void> | undefined;
  /** Every queued action in drain order, as memory keeps it, leaving out the ids in `skip`. */
  waiting(skip?: ReadonlySet<string>): QueuedAction[];
  /** Forgets an action at once; resolves with it (undefined if it was not queued) when that reached the disk. */
  remove(id: string): Promise<Action | undefined>;
  /**
   * The cloud acknowledged the action at `atMs`: forgets it at once, and does not queue its id again. Rejects when
   * its write failed, which the outbox tries again itself: the action is not handed out again meanwhile.
   */
  markDelivered(id: string, atMs: number): Promise<void>;
  readonly size: number;
}
