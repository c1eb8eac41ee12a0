import { performance } from 'node:perf_hooks';

/**
 * Long work (a replay, a checkpoint's encoding) on the broker's thread gives devices that are connecting up to this
 * many times the time of its last batch: about a tenth of the loop for the work while a reconnect storm comes in.
 */
const CONNECTING_SHARE = 9;

/**
 * Lets the event loop serve I/O before long work goes on: one turn of the loop, then more turns while `steps` (a count
 * that moves as devices connect, `Broker.connectionSteps`) moved in the last one, for up to `CONNECTING_SHARE` times
 * `workedMs`. One turn is not enough for a storm: libuv accepts one connection a turn (it relies on the listening socket
 * polling ready again, libuv#3696), so work that yields a turn at a time lets the listener take in one connection per
 * batch, about 70 a second against a replay's batches, while thousands wait in the kernel's queue and time out.
 * Resolves to how long the first turn took (the I/O that was waiting).
 */
export async function yieldToIo(workedMs: number, steps?: () => number): Promise<number> {
  const from = performance.now();
  let before = steps?.();
  await turn();
  const firstTurnMs = performance.now() - from;
  if (steps === undefined) return firstTurnMs;
  const untilMs = from + CONNECTING_SHARE * workedMs;
  for (let now = steps(); now !== before && performance.now() < untilMs; now = steps()) {
    before = now;
    await turn();
  }
  return firstTurnMs;
}

function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
