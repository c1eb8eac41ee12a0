import type { Clock } from './clock.js';
import type { FireTimer, Scheduler } from './scheduler.js';

/** The pending-timer structure the driver arms real timers for (the engine's TimerQueue). */
export interface TimerQueueLike {
  /** `actor` is kept with the timer and handed out again when it falls due. */
  schedule(key: string, dueAt: number, actor: string): void;
  cancel(key: string): void;
  peek(): { key: string; dueAt: number } | undefined;
  popDue(now: number): Array<{ key: string; dueAt: number; actor?: string | undefined }>;
  readonly size: number;
}

/** setTimeout takes at most a signed 32-bit delay; longer waits are re-armed when they end. */
const MAX_DELAY_MS = 2_147_483_647;

/**
 * Carries out the engine's schedule and cancel effects with one real timer, armed for the earliest
 * deadline only, however many timers are pending.
 */
export class TimerDriver implements Scheduler {
  private handle: NodeJS.Timeout | undefined;
  private armedFor = Number.POSITIVE_INFINITY;
  private stopped = false;

  constructor(
    private readonly queue: TimerQueueLike,
    private readonly clock: Clock,
    private readonly fire: FireTimer,
  ) {}

  now(): number {
    return this.clock.now();
  }

  get pending(): number {
    return this.queue.size;
  }

  schedule(key: string, actor: string, dueAt: number): void {
    // Whose profile its firing needs, kept in the queue's slot (no map of its own: a million timers, a million entries).
    this.queue.schedule(key, dueAt, actor);
    if (dueAt < this.armedFor) this.arm();
  }

  cancel(key: string): void {
    this.queue.cancel(key);
    // A cancelled earliest timer leaves the real timer armed early; it finds nothing due and re-arms.
  }

  stop(): void {
    this.stopped = true;
    if (this.handle) clearTimeout(this.handle);
    this.handle = undefined;
  }

  private arm(): void {
    if (this.stopped) return;
    if (this.handle) clearTimeout(this.handle);
    this.handle = undefined;
    const next = this.queue.peek();
    if (!next) {
      this.armedFor = Number.POSITIVE_INFINITY;
      return;
    }
    this.armedFor = next.dueAt;
    const delay = Math.min(MAX_DELAY_MS, Math.max(0, next.dueAt - this.clock.now()));
    this.handle = setTimeout(() => this.onTimeout(), delay);
  }

  private onTimeout(): void {
    this.handle = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    for (const due of this.queue.popDue(this.clock.now())) this.fire(due.key, due.actor, due.dueAt);
    this.arm();
  }
}
