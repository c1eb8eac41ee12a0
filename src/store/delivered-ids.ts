/** Past this many ids taken from the front of the queue, the queue is copied down (amortised O(1)). */
const COMPACT_AFTER = 4_096;

/**
 * Ids with a gateway time each, at most `max`, oldest first: the ids of actions the cloud acknowledged, and those the
 * outbox dropped to make room. Membership is a map lookup; the order is a queue of its own, so dropping the oldest
 * costs O(1) (taking the first key of a set from which many were deleted walks past every deleted one). An id taken
 * back (`forget`) leaves its place in the queue behind, skipped when the queue reaches it.
 */
export class DeliveredIds {
  // Each id with its place in the queue (counted from the first ever queued).
  readonly #ids = new Map<string, number>();
  #order: string[] = [];
  #orderAt: number[] = [];
  #head = 0;
  /** Places taken off the queue by compaction. */
  #base = 0;
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
    this.#ids.set(id, this.#base + this.#order.length);
    this.#order.push(id);
    this.#orderAt.push(at);
    while (this.#ids.size > this.max) {
      const oldest = this.#shift();
      if (oldest === undefined) break;
      evicted.push(oldest);
    }
    return at;
  }

  /** Takes `id` back (its write failed); false if it was not remembered. */
  forget(id: string): boolean {
    return this.#ids.delete(id);
  }

  /** Takes out up to `limit` ids delivered before `atMs`, oldest first. */
  takeBefore(atMs: number, limit: number): string[] {
    const taken: string[] = [];
    while (taken.length < limit && this.#skipTakenBack()) {
      if ((this.#orderAt[this.#head] as number) >= atMs) break;
      const id = this.#shift();
      if (id !== undefined) taken.push(id);
    }
    return taken;
  }

  // Moves the head past the places of ids taken back; false when the queue is empty.
  #skipTakenBack(): boolean {
    while (this.#head < this.#order.length) {
      const id = this.#order[this.#head] as string;
      if (this.#ids.get(id) === this.#base + this.#head) return true;
      this.#advance();
    }
    return false;
  }

  #shift(): string | undefined {
    if (!this.#skipTakenBack()) return undefined;
    const id = this.#order[this.#head] as string;
    this.#ids.delete(id);
    this.#advance();
    return id;
  }

  #advance(): void {
    this.#head += 1;
    if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#orderAt = this.#orderAt.slice(this.#head);
      this.#base += this.#head;
      this.#head = 0;
    }
  }
}
