import { TimerQueue } from '../engine/index.js';
import type { FireTimer, Scheduler } from './scheduler.js';

/** Virtual time for `vigil replay` and the tests: time moves only when told, and timers fire in deadline order. */
export class VirtualScheduler implements Scheduler {
  /** The pending timers, in deadline order. */
  readonly queue = new TimerQueue();
  private readonly actors = new Map<string, string>();
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
    this.queue.schedule(timer, dueAt);
    this.actors.set(timer, actor);
  }

  cancel(timer: string): void {
    this.queue.cancel(timer);
    this.actors.delete(timer);
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
      const actor = this.actors.get(next.key);
      this.actors.delete(next.key);
      fire(next.key, actor, next.dueAt);
    }
    this.at = Math.max(this.at, limit);
  }
}
