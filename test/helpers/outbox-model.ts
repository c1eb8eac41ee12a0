import type { Action } from '../../src/shared/index.js';

/**
 * What the outbox should hold, as a plain list in drain order: an action goes after its equals in priority, and past
 * `maxCount` the lowest priority's oldest is dropped. The property tests of the outbox compare it with this.
 */
export class OutboxModel {
  items: Action[] = [];

  constructor(private readonly maxCount: number) {}

  /** Adds `a`; returns what it dropped to make room (none, or the one action). */
  add(a: Action): Action[] {
    const at = this.items.findIndex((m) => m.priority < a.priority);
    this.items.splice(at === -1 ? this.items.length : at, 0, a);
    if (this.items.length <= this.maxCount) return [];
    const lowest = Math.min(...this.items.map((m) => m.priority));
    const victim = this.items.find((m) => m.priority === lowest) as Action;
    this.remove(victim);
    return [victim];
  }

  remove(a: Action): void {
    this.items = this.items.filter((m) => m !== a);
  }
}
