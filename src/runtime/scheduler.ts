/**
 * Where the decision loop keeps time: the clock it stamps decisions with and the timers the engine asks for.
 * Live it is the real clock with real timers (TimerDriver); in `vigil replay` and the tests it is virtual time
 * (VirtualScheduler). The loop is the same code either way.
 */
export interface Scheduler {
  now(): number;
  /** Arms (or moves) `timer` for `dueAt`; `actor` is whose profile its firing needs. */
  schedule(timer: string, actor: string, dueAt: number): void;
  cancel(timer: string): void;
  /** Timers armed and not yet fired or cancelled. */
  readonly pending: number;
}

/** How a scheduler hands a timer that fell due back to the loop. */
export type FireTimer = (timer: string, actor: string | undefined, dueAt: number) => void;
