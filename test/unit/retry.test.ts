import { expect, test } from 'vitest';
import { retryUntilDone } from '../../src/runtime/index.js';

test('an operation that succeeds at once is not retried, and its value comes back', async () => {
  const errors: number[] = [];
  const value = await retryUntilDone(() => Promise.resolve(7), {
    stopped: () => false,
    onError: (_err, attempt) => errors.push(attempt),
  });
  expect(value).toBe(7);
  expect(errors).toEqual([]);
});

test('failures, thrown or rejected, are reported with their attempt and tried again until one succeeds', async () => {
  const seen: Array<[string, number]> = [];
  let calls = 0;
  const value = await retryUntilDone(
    () => {
      calls++;
      if (calls === 1) throw new Error('thrown');
      if (calls < 4) return Promise.reject(new Error(`rejected ${calls}`));
      return Promise.resolve('done');
    },
    {
      stopped: () => false,
      onError: (err, attempt) => seen.push([(err as Error).message, attempt]),
      minMs: 1,
      maxMs: 2,
    },
  );
  expect(value).toBe('done');
  expect(seen).toEqual([
    ['thrown', 1],
    ['rejected 2', 2],
    ['rejected 3', 3],
  ]);
});

test('once stopped, the last failure is what it rejects with', async () => {
  let stopped = false;
  let calls = 0;
  const attempts: number[] = [];
  const result = retryUntilDone(() => Promise.reject(new Error(`failure ${++calls}`)), {
    stopped: () => stopped,
    onError: (_err, attempt) => {
      attempts.push(attempt);
      if (attempt === 2) stopped = true;
    },
    minMs: 1,
  });
  await expect(result).rejects.toThrow('failure 2');
  expect(attempts).toEqual([1, 2]);
  expect(calls).toBe(2);
});
