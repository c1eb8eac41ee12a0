import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  /** Stop trying (the gateway is closing): the last error is thrown. */
  stopped: () => boolean;
  onError: (err: unknown, attempt: number) => void;
  minMs?: number;
  maxMs?: number;
}

/** Runs `operation` until it succeeds, backing off from `minMs` (100) doubling up to `maxMs` (5 s). */
export async function retryUntilDone<T>(operation: () => Promise<T>, opts: RetryOptions): Promise<T> {
  let delayMs = opts.minMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (err) {
      opts.onError(err, attempt);
      if (opts.stopped()) throw err;
      await sleep(delayMs);
      if (opts.stopped()) throw err;
      delayMs = Math.min(opts.maxMs ?? 5_000, delayMs * 2);
    }
  }
}
