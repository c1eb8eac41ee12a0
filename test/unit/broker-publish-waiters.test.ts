import fc from 'fast-check';
import { expect, test } from 'vitest';
import { PublishWaiters } from '../../src/broker/publish-waiters.js';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // The waiters hang their own handlers on it; a rejection left to them must not count as unhandled here.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** What each publish heard, in order: `ok n`, or `refused n: message` through the refuse callback. */
function harness(): { waiters: PublishWaiters<number>; heard: string[] } {
  const heard: string[] = [];
  const waiters = new PublishWaiters<number>((err, who, topic, done) => {
    heard.push(`refused ${who} ${topic}: ${(err as Error).message}`);
    done(err as Error);
  });
  return { waiters, heard };
}

test('each publish is answered once its own promise settles, in the order the publishes asked', async () => {
  await fc.assert(
    fc.asyncProperty(
      // Which of four promises each publish waits for, and the order in which the promises settle (odd ones reject).
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 40 }),
      fc.shuffledSubarray([0, 1, 2, 3], { minLength: 4, maxLength: 4 }),
      async (waitsFor, settleOrder) => {
        const { waiters, heard } = harness();
        const promises = [deferred(), deferred(), deferred(), deferred()];
        const answered: string[] = [];
        waitsFor.forEach((p, i) => {
          waiters.wait(
            (promises[p] as Deferred).promise,
            (err) => answered.push(err ? `${i} failed` : `${i} ok`),
            i,
            `t${p}`,
          );
        });
        const expected: string[] = [];
        const refused: string[] = [];
        for (const p of settleOrder) {
          if (p % 2 === 0) (promises[p] as Deferred).resolve();
          else (promises[p] as Deferred).reject(new Error(`commit ${p} failed`));
          await new Promise((r) => setImmediate(r));
          waitsFor.forEach((q, i) => {
            if (q !== p) return;
            expected.push(p % 2 === 0 ? `${i} ok` : `${i} failed`);
            if (p % 2 === 1) refused.push(`refused ${i} t${p}: commit ${p} failed`);
          });
        }
        expect(answered).toEqual(expected);
        expect(heard).toEqual(refused);
      },
    ),
    { numRuns: 100 },
  );
});

test('a publish that asks while others are answered waits for its own promise', async () => {
  const { waiters } = harness();
  const first = deferred();
  const second = deferred();
  const answered: string[] = [];
  waiters.wait(
    first.promise,
    () => {
      answered.push('a');
      // Asked from within an answer (aedes reads on): the same promise, settled already, answers it too.
      waiters.wait(first.promise, () => answered.push('c'), 3, 't');
      waiters.wait(second.promise, () => answered.push('d'), 4, 't');
    },
    1,
    't',
  );
  waiters.wait(first.promise, () => answered.push('b'), 2, 't');
  first.resolve();
  await new Promise((r) => setImmediate(r));
  expect(answered).toEqual(['a', 'b', 'c']);
  // A promise settled long ago still answers a publish that comes to wait for it.
  waiters.wait(first.promise, () => answered.push('e'), 5, 't');
  second.resolve();
  await new Promise((r) => setImmediate(r));
  expect(answered).toEqual(['a', 'b', 'c', 'e', 'd']);
});

test('a callback that throws does not leave the publishes after it unanswered', async () => {
  const { waiters } = harness();
  const commit = deferred();
  const answered: number[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown): void => void unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  try {
    waiters.wait(
      commit.promise,
      () => {
        throw new Error('aedes failed');
      },
      1,
      't',
    );
    waiters.wait(commit.promise, () => void answered.push(2), 2, 't');
    commit.resolve();
    await new Promise((r) => setTimeout(r, 10));
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  expect(answered).toEqual([2]);
  expect(unhandled).toHaveLength(1);
});

test('a promise that settled before a publish asked still answers it', async () => {
  const { waiters } = harness();
  const commit = deferred();
  const answered: number[] = [];
  waiters.wait(commit.promise, () => void answered.push(1), 1, 't');
  commit.resolve();
  await new Promise((r) => setImmediate(r));
  waiters.wait(commit.promise, () => void answered.push(2), 2, 't');
  await new Promise((r) => setImmediate(r));
  expect(answered).toEqual([1, 2]);
});
