/** Past this many ids taken from the front of the queue, the queue is copied down (amortised O(1)). */
const COMPACT_AFTER = 4_096;

/**
 * The ids of actions the cloud acknowledged, with the gateway time of each delivery, at most `max`. Membership
 * is a set lookup; the delivery order is a queue of its own, so dropping the oldest costs O(1) (taking the first
 * key of a set from which many were deleted walks past every deleted one).
 */
export class DeliveredIds {
  readonly #ids = new Set<string>();
  #order: string[] = [];
  #orderAt: number[] = [];
  #head = 0;
  #latestAt = Number.NEGATIVE_INFINITY;

  constructor(readonly max: number) {}

  get size(): number {
    return this.#ids.size;
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /**
   * Remembers `id` as delivered at `atMs` and returns the time kept for it, undefined if it was already
   * remembered. Times are kept in order: one earlier than the latest (a clock that moved back across a restart)
   * is kept as the latest, which keeps the id longer, never shorter. Ids past `max` are dropped, oldest first,
   * into `evicted`.
   */
  add(id: string, atMs: number, evicted: string[]): number | undefined {
    if (this.#ids.has(id)) return undefined;
    const at = Math.max(atMs, this.#latestAt);
    this.#latestAt = at;
    this.#ids.add(id);
    this.#order.push(id);
    this.#orderAt.push(at);
    while (this.#ids.size > this.max) {
      const oldest = this.#shift();
      if (oldest === undefined) break;
      evicted.push(oldest);
    }
    return at;
  }

  /** Takes out up to `limit` ids delivered before `atMs`, oldest first. */
  takeBefore(atMs: number, limit: number): string[] {
    const taken: string[] = [];
    while (taken.length < limit && this.#head < this.#order.length) {
      if ((this.#orderAt[this.#head] as number) >= atMs) break;
      const id = this.#shift();
      if (id !== undefined) taken.push(id);
    }
    return taken;
  }

  #shift(): string | undefined {
    if (this.#head >= this.#order.length) return undefined;
    const id = this.#order[this.#head] as string;
    this.#head += 1;
    this.#ids.delete(id);
    if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#orderAt = this.#orderAt.slice(this.#head);
      this.#head = 0;
    }
    return id;
  }
}
