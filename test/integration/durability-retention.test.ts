import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { replayJournal, type JournalReplay } from '../../src/runtime/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';
import { busyRun, LiveRun } from './retention-run.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function journalDir(): Promise<string> {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  return join(tmp.path, 'journal');
}

async function started(dir: string, settings: Parameters<typeof LiveRun.start>[1] = {}): Promise<LiveRun> {
  const run = await LiveRun.start(dir, settings);
  cleanups.push(() => run.durable.close());
  return run;
}

/** Every file in `dir` with a hash of its content. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    files[name] = createHash('sha256')
      .update(await readFile(join(dir, name)))
      .digest('hex');
  }
  return files;
}

async function replayed(dir: string, range: { fromMs?: number; toMs?: number } = {}): Promise<JournalReplay> {
  const result = await replayJournal({ dir, gateway: 'gw1', logger: captureLogs().logger, ...range });
  if (result === undefined) throw new Error(`no journal in ${dir}`);
  return result;
}

const sentIds = (r: JournalReplay): string[] =>
  r.actions
    .filter((a) => a.suppressed === undefined)
    .map((a) => a.id)
    .sort();

const checkpointsIn = async (dir: string): Promise<string[]> =>
  (await readdir(dir)).filter((n) => n.startsWith('checkpoint-')).sort();
const segmentsIn = async (dir: string): Promise<string[]> =>
  (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();

describe('vigil replay --journal', () => {
  test('decides the action ids the live run sent, from empty state, and leaves the directory untouched', async () => {
    const dir = await journalDir();
    const run = await started(dir);
    await busyRun(run);
    const scenarios = new Set(run.sent.map((a) => a.scenario));
    expect(scenarios).toEqual(new Set(['hot', 'quiet', 'burst', 'page']));

    // The gateway still owns the directory: the replay reads it beside it and changes nothing.
    const before = await snapshot(dir);
    const result = await replayed(dir);
    expect(await snapshot(dir)).toEqual(before);

    expect(result.startSeq).toBe(0);
    expect(result.retained.fromSeq).toBe(0);
    expect(sentIds(result)).toEqual(run.sentIds());
    expect(result.unprofiled).toEqual([]);
  });

  test('from a checkpoint after the swap: the rules of that moment, the ids the live run sent since', async () => {
    const dir = await journalDir();
    const run = await started(dir);
    const { swappedAt } = await busyRun(run);
    const result = await replayed(dir, { fromMs: swappedAt + 5_000 });
    expect(result.startSeq).toBeGreaterThan(0);
    expect(result.startAt).toBeLessThanOrEqual(swappedAt + 5_000);
    const live = run.sent.filter((a) => a.decidedAt >= swappedAt + 5_000).map((a) => a.id);
    expect(live.length).toBeGreaterThan(0);
    expect(sentIds(result)).toEqual(live.sort());
  });

  test('across a rules swap, each event is judged by the rules in force at its moment', async () => {
    const dir = await journalDir();
    const run = await started(dir);
    await run.profile('d1', 50);
    await run.reading('d1', 60); // a: 60 > 50, hot
    await run.advance(1_000);
    await run.durable.checkpoint();
    await run.swap('b');
    await run.advance(1_000);
    await run.reading('d1', 60); // b: 60 is not > 70
    await run.reading('d1', 71); // b: hot
    const result = await replayed(dir);
    const hot = result.actions.filter((a) => a.scenario === 'hot');
    expect(hot.map((a) => a.decidedAt - run.now)).toEqual([-2_000, 0]);
    expect(sentIds(result)).toEqual(run.sentIds());
  });

  test('profiles recorded before the start are carried to it; those from before the journal kept are given', async () => {
    const dir = await journalDir();
    const run = await started(dir, { retention: { maxAgeMs: 20_000, maxBytes: 1024 ** 3 } });
    await run.profile('d1', 50);
    await run.profile('d2', 50);
    for (let i = 0; i < 4; i++) {
      await run.reading('d1', 60);
      await run.advance(10_000);
      await run.durable.checkpoint();
    }
    for (let i = 0; i < 3; i++) {
      if (i === 1) await run.profile('d2', 10);
      await run.reading('d1', 60);
      await run.reading('d2', 30);
      await run.advance(10_000);
      await run.durable.checkpoint();
    }
    const since = (r: JournalReplay): string[] =>
      run.sent
        .filter((a) => a.decidedAt >= r.startAt)
        .map((a) => a.id)
        .sort();
    // The journal kept begins after d1's profile was recorded; d2's change to 10 is in it.
    const blind = await replayed(dir);
    expect(blind.startSeq).toBeGreaterThan(0);
    expect(blind.unprofiled).toEqual(['d1']);
    expect(sentIds(blind)).not.toEqual(since(blind));
    const given = await replayJournal({
      dir,
      gateway: 'gw1',
      logger: captureLogs().logger,
      profiles: new Map([['d1', { limit: 50 }]]),
    });
    expect(given?.unprofiled).toEqual([]);
    expect(given && sentIds(given)).toEqual(since(blind));
    // From a later checkpoint, d2's profile comes from its record before that checkpoint.
    const later = await replayed(dir, { fromMs: run.now - 10_000 });
    expect(later.startSeq).toBeGreaterThan(blind.startSeq);
    expect(later.actions.filter((a) => a.actor === 'd2').length).toBeGreaterThan(0);
  });

  test('a range outside what is retained is refused, saying what is', async () => {
    const dir = await journalDir();
    const run = await started(dir);
    await busyRun(run);
    const { retained } = await replayed(dir);
    await expect(replayed(dir, { fromMs: retained.fromAt - 1 })).rejects.toMatchObject({
      code: 'VIGIL_REPLAY_RANGE',
      message: expect.stringContaining(new Date(retained.fromAt).toISOString()) as string,
    });
    await expect(replayed(dir, { fromMs: retained.toAt + 1 })).rejects.toMatchObject({
      code: 'VIGIL_REPLAY_RANGE',
    });
    expect(
      await replayJournal({ dir: join(dir, 'nothing'), gateway: 'gw1', logger: captureLogs().logger }),
    ).toBe(undefined);
  });
});

describe('retention', () => {
  test('by age: checkpoints older than the age go, with the journal before the oldest kept', async () => {
    const dir = await journalDir();
    const run = await started(dir, { retention: { maxAgeMs: 30_000, maxBytes: 1024 ** 3 } });
    const first = await segmentsIn(dir);
    expect(first[0]).toMatch(/^0000000000000001-/);
    for (let i = 0; i < 8; i++) {
      await run.reading('d1', i);
      await run.advance(10_000);
      await run.durable.checkpoint();
    }
    // Checkpoints at 10 s steps: those within 30 s of the newest stay, four of them.
    const kept = await checkpointsIn(dir);
    expect(kept).toHaveLength(4);
    const oldestSeq = Number(/checkpoint-(\d+)/.exec(kept[0] as string)?.[1]);
    const firstSegment = Number(/^(\d+)-/.exec((await segmentsIn(dir))[0] as string)?.[1]);
    expect(firstSegment).toBe(oldestSeq + 1);
    const health = run.durable.health().retained;
    expect(health).toMatchObject({ fromSeq: oldestSeq, checkpoints: 4 });
    expect(Date.parse(health?.from ?? '')).toBe(run.now - 30_000);
    // What is retained replays from its oldest checkpoint to the ids sent since.
    const result = await replayed(dir);
    expect(result.startSeq).toBe(oldestSeq);
    expect(sentIds(result)).toEqual(
      run.sent
        .filter((a) => a.decidedAt > run.now - 30_000)
        .map((a) => a.id)
        .sort(),
    );
  });

  test('by size: as many checkpoints as fit with the journal after them, never fewer than two', async () => {
    const runWith = async (maxBytes: number) => {
      const dir = await journalDir();
      const run = await started(dir, { retention: { maxAgeMs: 3_600_000, maxBytes } });
      for (let i = 0; i < 6; i++) {
        for (let j = 0; j < 20; j++) await run.reading(`d${j}`, i);
        await run.advance(1_000);
        await run.durable.checkpoint();
      }
      let bytes = 0;
      for (const name of await readdir(dir)) bytes += (await readFile(join(dir, name))).length;
      return { dir, run, bytes, checkpoints: await checkpointsIn(dir), segments: await segmentsIn(dir) };
    };
    const all = await runWith(1024 ** 3);
    expect(all.checkpoints).toHaveLength(7); // the one after recovery, and six
    expect(all.segments[0]).toMatch(/^0000000000000001-/);
    expect(all.run.durable.health().retained).toMatchObject({ fromSeq: 0, bytes: all.bytes });

    const tiny = await runWith(1);
    expect(tiny.checkpoints).toHaveLength(2);
    expect(Number(/^(\d+)-/.exec(tiny.segments[0] as string)?.[1])).toBe(
      Number(/checkpoint-(\d+)/.exec(tiny.checkpoints[0] as string)?.[1]) + 1,
    );

    const half = await runWith(Math.floor(all.bytes / 2));
    expect(half.checkpoints.length).toBeGreaterThan(2);
    expect(half.checkpoints.length).toBeLessThan(7);
    expect(half.bytes).toBeLessThanOrEqual(Math.floor(all.bytes / 2));
    const result = await replayed(half.dir);
    expect(result.startSeq).toBe(Number(/checkpoint-(\d+)/.exec(half.checkpoints[0] as string)?.[1]));
  });
});
