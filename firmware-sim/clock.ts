/**
 * Wall-clock milliseconds with sub-millisecond precision. The `ts` in payloads and the `receivedAtMs` given to
 * `onCommand` both come from it, so a latency taken in one process is exact to the microsecond.
 */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
