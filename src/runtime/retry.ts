import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  /** Stop trying (the gateway is closing): the last error is thrown. */
  stopped: () => boolean;
  onError: (err: unknown, attempt: number) => void;
  minMs?: number;
  maxMs?: number;
}

/**
 * Runs `operation` until it succeeds, backing off from `minMs` (100) doubling up to `maxMs` (5 s). The first attempt
 * goes without an async function of its own: most succeed, and this runs for every action written.
 */
export function retryUntilDone<T>(operation: () => Promise<T>, opts: RetryOptions): Promise<T> {
  let first: Promise<T>;
  try {
    first = operation();
  } catch (err) {
    // Thrown rather than rejected: retried all the same.
    return retryAfter(operation, opts, err);
  }
  return first.then(undefined, (err: unknown) => retryAfter(operation, opts, err));
}

/** Attempt 1 failed with `err`: backs off and tries again, as long as it is not stopped. */
async function retryAfter<T>(operation: () => Promise<T>, opts: RetryOptions, err: unknown): Promise<T> {
  let delayMs = opts.minMs ?? 100;
  let failure = err;
  for (let attempt = 1; ; attempt++) {
    opts.onError(failure, attempt);
    if (opts.stopped()) throw failure;
    await sleep(delayMs);
    if (opts.stopped()) throw failure;
    delayMs = Math.min(opts.maxMs ?? 5_000, delayMs * 2);
    try {
      return await operation();
    } catch (next) {
      failure = next;
    }
  }
}
