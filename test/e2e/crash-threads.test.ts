import { afterEach, describe, expect, test } from 'vitest';
import { runCrashLoad } from './crash-load.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const KILLS = Number(process.env.VIGIL_CRASH_KILLS ?? 4);
const SEED = Number(process.env.VIGIL_CRASH_SEED ?? Date.now() % 1_000_000);
const DEVICES = 6;

describe('kill -9 of the gateway with --threads 2 under QoS 1 load', () => {
  test(`${KILLS} crashes: every acknowledged event decided once, every command at its device, the journal replays to what the cloud received`, async () => {
    const run = await runCrashLoad({
      name: 'crash threads',
      kills: KILLS,
      seed: SEED,
      devices: DEVICES,
      readingPause: { minMs: 2, spreadMs: 10 },
      args: ['--threads', '2'],
      onCleanup: (c) => cleanups.push(c),
    });
    expect(run.missingActions().slice(0, 20)).toEqual([]);
    expect([...run.idsByKey].filter(([, set]) => set.size > 1).map(([key]) => key)).toEqual([]);
    expect(run.missingCommands()).toEqual([]);
    expect(run.deviceEvents).toBeGreaterThan(KILLS * DEVICES * 10);

    const replayed = await run.replay();
    expect(replayed.code, replayed.stderr).toBe(0);
    expect([...replayed.ids].filter((id) => !run.received.has(id)).slice(0, 20)).toEqual([]);
    expect([...run.received].filter((id) => !replayed.ids.has(id)).slice(0, 20)).toEqual([]);
  }, 90_000);
});
