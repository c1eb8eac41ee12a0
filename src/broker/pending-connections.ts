/**
 * Connections accepted whose CONNECT has not completed, by source address, oldest first. It knows at
 * any time which address holds the most (in constant time: addresses are kept in buckets by count), so
 * that a full listener can take a place from the address that holds the most rather than refuse
 * everyone else.
 */
export class PendingConnections<C> {
  // Set order is arrival order: the first of each set is that address's oldest pending connection.
  private readonly byAddress = new Map<string, Set<C>>();
  private readonly addressesByCount = new Map<number, Set<string>>();
  // The largest count any address holds; 0 when none is pending.
  private top = 0;
  private total = 0;

  get size(): number {
    return this.total;
  }

  count(address: string): number {
    return this.byAddress.get(address)?.size ?? 0;
  }

  add(address: string, connection: C): void {
    let held = this.byAddress.get(address);
    if (held === undefined) {
      held = new Set();
      this.byAddress.set(address, held);
    }
    if (held.has(connection)) return;
    held.add(connection);
    this.total++;
    this.move(address, held.size - 1, held.size);
  }

  /** False when `connection` was not pending. */
  delete(address: string, connection: C): boolean {
    const held = this.byAddress.get(address);
    if (held?.delete(connection) !== true) return false;
    this.total--;
    if (held.size === 0) this.byAddress.delete(address);
    this.move(address, held.size + 1, held.size);
    return true;
  }

  /** The address holding the most pending connections, how many, and its oldest one. */
  heaviest(): { address: string; count: number; oldest: C } | undefined {
    const address = this.addressesByCount.get(this.top)?.values().next().value;
    if (address === undefined) return undefined;
    const oldest = this.byAddress.get(address)?.values().next().value;
    return oldest === undefined ? undefined : { address, count: this.top, oldest };
  }

  private move(address: string, from: number, to: number): void {
    if (from > 0) {
      const bucket = this.addressesByCount.get(from);
      bucket?.delete(address);
      if (bucket?.size === 0) this.addressesByCount.delete(from);
    }
    if (to > 0) {
      let bucket = this.addressesByCount.get(to);
      if (bucket === undefined) {
        bucket = new Set();
        this.addressesByCount.set(to, bucket);
      }
      bucket.add(address);
    }
    // Counts move by one, so the top moves by at most one, to where `address` now is.
    if (to > this.top) this.top = to;
    else if (from === this.top && !this.addressesByCount.has(from)) this.top = to;
  }
}
