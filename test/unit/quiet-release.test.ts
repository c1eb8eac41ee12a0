import { runInNewContext } from 'node:vm';
import { expect, test } from 'vitest';
import {
  QUIET_CHECK_MS,
  QUIET_INPUTS_PER_SECOND,
  QuietRelease,
  RELEASE_MIN_GROWTH_BYTES,
  RELEASE_MIN_INTERVAL_MS,
} from '../../src/runtime/quiet-release.js';

/** A gateway's inputs and time, driven by hand; the memory and the collection are the process's own. */
function gateway(quietMs: number) {
  const g = { now: 0, inputs: 0, busy: false };
  const release = new QuietRelease({
    quietMs,
    inputs: () => g.inputs,
    busy: () => g.busy,
    now: () => g.now,
  });
  /** `checks` checks, `perSecond` inputs a second between them; the reports of the releases made. */
  const run = (checks: number, perSecond: number) => {
    const reports = [];
    for (let i = 0; i < checks; i++) {
      g.now += QUIET_CHECK_MS;
      g.inputs += (perSecond * QUIET_CHECK_MS) / 1_000;
      const report = release.check();
      if (report !== undefined) reports.push(report);
    }
    return reports;
  };
  return { g, release, run };
}

/** What a burst leaves: a heap grown well past what stays in use, in objects that are garbage once it is over. */
function burst(): number {
  const made: Array<{ id: string; at: number[] }> = [];
  for (let i = 0; i < 1_500_000; i++) made.push({ id: `device-${i}`, at: [i, i + 1] });
  return made.length;
}

test('a gateway gone quiet after a burst gives the memory V8 kept back, once', () => {
  const { release, run } = gateway(60_000);
  release.check();
  // Busy: a burst of inputs while the heap grows.
  expect(run(4, 5_000)).toEqual([]);
  expect(burst()).toBe(1_500_000);
  expect(run(4, 5_000)).toEqual([]);
  const grownRss = process.memoryUsage.rss();
  // Quiet (a few inputs a second): not before the quiet time is over.
  expect(run(60_000 / QUIET_CHECK_MS - 1, 2)).toEqual([]);
  const [report, ...more] = run(1, 2);
  expect(more).toEqual([]);
  expect(report).toBeDefined();
  if (report === undefined) return;
  expect(report.before.rss).toBeGreaterThanOrEqual(grownRss - RELEASE_MIN_GROWTH_BYTES);
  expect(report.after.heapTotal).toBeLessThan(report.before.heapTotal);
  expect(report.after.rss).toBeLessThan(report.before.rss - RELEASE_MIN_GROWTH_BYTES / 2);
  expect(report.pauseMs).toBeGreaterThan(0);
  // No `gc` function is left in any context.
  expect(runInNewContext('typeof gc')).toBe('undefined');
  // Quiet on, another burst: not again before the least interval between two releases.
  expect(burst()).toBe(1_500_000);
  expect(run((RELEASE_MIN_INTERVAL_MS - QUIET_CHECK_MS) / QUIET_CHECK_MS - 1, 0)).toEqual([]);
});

test('under load nothing is released, however much V8 keeps', () => {
  const { g, release, run } = gateway(10_000);
  release.check();
  expect(burst()).toBe(1_500_000);
  // Steady traffic over the quiet rate.
  expect(run(20, QUIET_INPUTS_PER_SECOND * 5)).toEqual([]);
  // Few inputs applied, but many waiting (a slow disk, a full queue): not quiet either.
  g.busy = true;
  expect(run(20, 0)).toEqual([]);
  // Quiet at last.
  g.busy = false;
  expect(run(10_000 / QUIET_CHECK_MS + 1, 0)).toHaveLength(1);
});

test('a gateway that has not grown since it went live makes no collection', () => {
  const { release, run } = gateway(10_000);
  release.check();
  expect(run(20, 0)).toEqual([]);
});

test('releaseWhenQuiet 0 never releases', () => {
  const { release, run } = gateway(0);
  release.check();
  expect(burst()).toBe(1_500_000);
  expect(run(200, 0)).toEqual([]);
});

/** A release whose `beforeRelease` (the checkpoint owed) settles when the test says. */
function owing(quietMs: number) {
  const g = { now: 0, inputs: 0, asked: 0, settle: (_failed: boolean): void => undefined };
  const release = new QuietRelease({
    quietMs,
    inputs: () => g.inputs,
    busy: () => false,
    now: () => g.now,
    beforeRelease: () => {
      g.asked++;
      return new Promise<void>((resolve, reject) => {
        g.settle = (failed) => (failed ? reject(new Error('disk full')) : resolve());
      });
    },
  });
  /** One check `perSecond` inputs a second after the last. */
  const check = (perSecond = 0) => {
    g.now += QUIET_CHECK_MS;
    g.inputs += (perSecond * QUIET_CHECK_MS) / 1_000;
    return release.check();
  };
  return { g, release, check };
}

const settled = () => new Promise((resolve) => setImmediate(resolve));

test('what is owed before a collection is done first; the collection comes at the check after it settled', async () => {
  const { g, release, check } = owing(10_000);
  release.check();
  expect(burst()).toBe(1_500_000);
  // Quiet long enough: the owed work is started, and no collection is made while it runs.
  for (let i = 0; i < 10 && g.asked === 0; i++) expect(check()).toBeUndefined();
  expect(g.asked).toBe(1);
  for (let i = 0; i < 5; i++) {
    expect(check()).toBeUndefined();
    await settled();
  }
  expect(g.asked).toBe(1);
  g.settle(false);
  await settled();
  const report = check();
  expect(report).toBeDefined();
  expect(report?.after.heapTotal).toBeLessThan(report?.before.heapTotal ?? 0);
  expect(g.asked).toBe(1);
});

test('load while the owed work runs puts the collection off; a failure of that work does not', async () => {
  const { g, release, check } = owing(10_000);
  release.check();
  expect(burst()).toBe(1_500_000);
  for (let i = 0; i < 10 && g.asked === 0; i++) expect(check()).toBeUndefined();
  expect(g.asked).toBe(1);
  // Busy again before it settled: nothing released, and once quiet again it is owed anew.
  expect(check(QUIET_INPUTS_PER_SECOND * 5)).toBeUndefined();
  g.settle(false);
  await settled();
  expect(check()).toBeUndefined();
  for (let i = 0; i < 10 && g.asked === 1; i++) expect(check()).toBeUndefined();
  expect(g.asked).toBe(2);
  g.settle(true);
  await settled();
  expect(check()).toBeDefined();
});
