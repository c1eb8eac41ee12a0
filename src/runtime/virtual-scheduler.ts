import { TimerQueue } from '../engine/index.js';
import type { FireTimer, Scheduler } from './scheduler.js';

/** Virtual time for `vigil replay` and the tests: time moves only when told, and timers fire in deadline order. */
export class VirtualScheduler implements Scheduler {
  /** The pending timers, in deadline order. */
  readonly queue = new TimerQueue();
  private at: number;

  constructor(startAt = 0) {
    this.at = startAt;
  }

  now(): number {
    return this.at;
  }

  get pending(): number {
    return this.queue.size;
  }

  schedule(timer: string, actor: string, dueAt: number): void {
    this.queue.schedule(timer, dueAt, actor);
  }

  cancel(timer: string): void {
    this.queue.cancel(timer);
  }

  /**
   * Moves time to `limit`, firing on the way, in deadline order, every timer due before it (and at it when
   * `inclusive`); time stands at each deadline while its timer fires.
   */
  advance(limit: number, inclusive: boolean, fire: FireTimer): void {
    for (;;) {
      const next = this.queue.peek();
      if (!next || next.dueAt > limit || (!inclusive && next.dueAt === limit)) break;
      this.queue.pop();
      this.at = Math.max(this.at, next.dueAt);
      fire(next.key, next.actor, next.dueAt);
    }
    this.at = Math.max(this.at, limit);
  }
}
