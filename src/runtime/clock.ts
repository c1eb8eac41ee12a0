import { performance } from 'node:perf_hooks';

/** Milliseconds since the epoch, advancing monotonically. */
export interface Clock {
  now(): number;
}

/**
 * Wall-clock time read once at start, then advanced by the monotonic clock, so an NTP step on a
 * gateway without a hardware clock neither fires every timer at once nor holds them back.
 */
export function monotonicClock(): Clock {
  const wallAtStart = Date.now();
  const monoAtStart = performance.now();
  return { now: () => Math.floor(wallAtStart + (performance.now() - monoAtStart)) };
}
