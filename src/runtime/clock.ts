import { performance } from 'node:perf_hooks';

/** Milliseconds since the epoch, advancing monotonically. */
export interface Clock {
  now(): number;
}

/**
 * Gateway time: the wall clock read once at start (less `offsetMs`, the offset of wall time over gateway time the
 * journal last recorded, so that the timeline of the state's timers carries on), then advanced by the monotonic
 * clock, so that an NTP step neither fires every timer at once nor holds them back.
 */
export function monotonicClock(offsetMs = 0): Clock {
  const gatewayAtStart = Date.now() - offsetMs;
  const monoAtStart = performance.now();
  return { now: () => Math.floor(gatewayAtStart + (performance.now() - monoAtStart)) };
}

/**
 * A wall clock before this is not synchronised: a gateway without a hardware clock boots in 1970, or at its last
 * shutdown. Linux's own view (adjtimex) is out of reach of Node without native code; a date this build cannot
 * precede is not. Moved forward now and then, never past a release's date.
 */
export const CLOCK_FLOOR_MS = Date.UTC(2026, 11, 1);

/** A step of the wall clock against gateway time smaller than this is drift, not a step. */
export const CLOCK_STEP_MS = 1_000;

/** How wall time relates to gateway time, as the journal records it: `wall = gateway + offsetMs`. */
export interface WallState {
  offsetMs: number;
  /** Whether the wall clock was synchronised (see `CLOCK_FLOOR_MS`). */
  synced: boolean;
  /**
   * The offset of the wall clock when it was last synchronised, where that is not `offsetMs` (while it is not
   * synchronised); absent: `offsetMs`. Held in checkpoints, never in clock records (it follows from them).
   */
  syncedOffsetMs?: number;
}

/**
 * The wall time stamped on what leaves the gateway (an action's `decidedAt` and `eventAt`), from gateway time and the
 * offset the journal recorded last. Moved only by clock records, in journal order, so a replay stamps as live did.
 */
export class WallTime {
  offsetMs = 0;
  synced = true;
  /**
   * The offset calendar windows follow: that of the wall clock when it was last synchronised. A gateway that never
   * was keeps gateway time (0); one that reboots without a hardware clock keeps the days it had, not 1970's.
   */
  syncedOffsetMs = 0;

  /** The wall time of gateway time `gatewayMs`. */
  at(gatewayMs: number): number {
    return gatewayMs + this.offsetMs;
  }

  /** The state a checkpoint held. */
  set(state: WallState): void {
    this.offsetMs = state.offsetMs;
    this.synced = state.synced;
    this.syncedOffsetMs = state.syncedOffsetMs ?? state.offsetMs;
  }

  /** A clock record: what the wall clock did next. */
  apply(change: WallState): void {
    this.offsetMs = change.offsetMs;
    this.synced = change.synced;
    if (change.synced) this.syncedOffsetMs = change.offsetMs;
  }

  state(): WallState {
    const state: WallState = { offsetMs: this.offsetMs, synced: this.synced };
    if (this.syncedOffsetMs !== this.offsetMs) state.syncedOffsetMs = this.syncedOffsetMs;
    return state;
  }
}

/** What the wall clock did, seen against gateway time: a new offset to record, and by how much it stepped. */
export interface WallChange extends WallState {
  /** Gateway time it was seen at. */
  at: number;
  /** How far the wall clock stepped (0 when only `synced` changed). */
  stepMs: number;
}

/**
 * Compares the wall clock with gateway time and the offset recorded last: a difference over `CLOCK_STEP_MS` is a
 * step (an NTP correction, an operator's `date -s`) and sets a new offset; synchronised is a wall clock at or after
 * `floorMs`. Undefined when nothing changed.
 */
export function observeWall(
  recorded: WallState,
  gatewayMs: number,
  wallMs: number,
  floorMs = CLOCK_FLOOR_MS,
): WallChange | undefined {
  const stepMs = wallMs - (gatewayMs + recorded.offsetMs);
  const stepped = Math.abs(stepMs) > CLOCK_STEP_MS;
  const synced = wallMs >= floorMs;
  if (!stepped && synced === recorded.synced) return undefined;
  return {
    at: gatewayMs,
    offsetMs: stepped ? wallMs - gatewayMs : recorded.offsetMs,
    synced,
    stepMs: stepped ? stepMs : 0,
  };
}
