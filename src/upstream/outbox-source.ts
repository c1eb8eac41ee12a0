import type { Action } from '../shared/index.js';

/** What the outbox keeps in memory of a queued action: enough to tell when its ttl passed. */
export interface QueuedAction {
  readonly id: string;
  readonly category: string;
  readonly decidedAt: number;
  readonly clockOffsetMs?: number;
  /**
   * The action itself, when the outbox holds it in memory; otherwise `remove` reads it back. Read it at once: it
   * changes as the outbox reads actions back and lets them go.
   */
  readonly action: Action | undefined;
}

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
  /** The cloud acknowledged the action at `atMs`: forgets it at once, and does not queue its id again. */
  markDelivered(id: string, atMs: number): Promise<void>;
  readonly size: number;
}
