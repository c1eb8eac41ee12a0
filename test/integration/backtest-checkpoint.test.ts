import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { RecordingRun } from '../../src/runtime/backtest.js';
import { retainedEvents } from '../../src/runtime/journal-replay.js';
import type { Profile } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';
import { compiled, LiveRun } from './retention-run.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

test('a backtest from the oldest checkpoint kept continues its state: the rules in force send again what the live run sent since, silences included', async () => {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const dir = join(tmp.path, 'journal');
  const run = await LiveRun.start(dir, { retention: { maxAgeMs: 40_000, maxBytes: 1024 ** 3 } });
  cleanups.push(() => run.durable.close());
  await run.profile('d1', 50);
  await run.profile('d2', 50);
  for (let i = 0; i < 6; i++) {
    await run.reading('d1', 60); // over d1's limit: hot
    if (i === 2) await run.reading('d2', 30); // then d2 falls silent: quiet
    await run.advance(7_000);
    await run.durable.checkpoint();
  }
  await run.advance(15_000); // both silent
  await run.durable.checkpoint();

  const logger = captureLogs().logger;
  const given = new Map<string, Profile>([...run.profiles].map(([id, p]) => [id, { ...p, id }]));
  const retained = await retainedEvents({ dir, logger, profiles: given });
  if (retained === undefined) throw new Error('no journal');
  // The journal kept begins after its first records: the backtest starts from a checkpoint's state.
  expect(retained.start.seq).toBeGreaterThan(0);
  expect(retained.start.state).toBeDefined();
  const backtest = new RecordingRun(
    compiled('a').rules,
    { gateway: 'gw1' },
    (actor) => retained.profileOf(actor),
    retained.start.state,
    logger,
  );
  for await (const { event } of retained.events()) backtest.feed(event);
  backtest.advanceTo(retained.retained.toAt);

  // The checkpoint was taken before the inputs of its moment.
  const sentSince = run.sent.filter((a) => a.decidedAt >= retained.start.at);
  expect(new Set(sentSince.map((a) => a.scenario))).toEqual(new Set(['hot', 'quiet']));
  // d2's silence began before the start: its timer comes from the checkpoint's state.
  expect(sentSince.some((a) => a.actor === 'd2' && a.eventAt - 10_000 < retained.start.at)).toBe(true);
  const sentByBacktest = backtest.actions.filter((a) => a.suppressed === undefined);
  expect(sentByBacktest.map((a) => a.id).sort()).toEqual(sentSince.map((a) => a.id).sort());
  expect(backtest.errors).toEqual([]);
});
