import { afterEach, describe, expect, test } from 'vitest';
import { runCrashLoad } from './crash-load.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const KILLS = Number(process.env.VIGIL_CRASH_KILLS ?? 6);
const SEED = Number(process.env.VIGIL_CRASH_SEED ?? Date.now() % 1_000_000);
/** Devices publishing readings (each decides one action to the cloud). */
const DEVICES = 8;
const CUSTOMERS = 8;
/** Repeats allowed at the cloud: only what was in flight to it at each kill. */
const MAX_REPEAT_SHARE = 0.02;

describe('kill -9 at random moments under QoS 1 load from devices and from the cloud', () => {
  test(`${KILLS} crashes: every acknowledged event decided, repeats at the cloud ≤ ${MAX_REPEAT_SHARE * 100}%, every command at its device, the journal replays to the ids the cloud received`, async () => {
    const run = await runCrashLoad({
      name: 'crash all',
      kills: KILLS,
      seed: SEED,
      devices: DEVICES,
      readingPause: { minMs: 5, spreadMs: 20 },
      customers: CUSTOMERS,
      onCleanup: (c) => cleanups.push(c),
    });
    const { received } = run;
    const repeats = run.deliveries.length - received.size;
    const decidedTwice = [...run.idsByKey].filter(([, set]) => set.size > 1).map(([key]) => key);
    const unexpected = [...run.idsByKey.keys()].filter((key) => !run.expected.has(key));
    expect(run.missingActions().slice(0, 20)).toEqual([]);
    expect(unexpected.slice(0, 20)).toEqual([]);
    // An event recorded before a kill and sent again (by a device or by the cloud broker) is not decided again.
    expect(decidedTwice.slice(0, 20)).toEqual([]);
    expect(repeats).toBeLessThanOrEqual(received.size * MAX_REPEAT_SHARE);
    expect(run.missingCommands()).toEqual([]);
    expect([...run.commandIds].filter(([, set]) => set.size > 1)).toEqual([]);
    expect(new Set(run.commands.map((c) => c.qos))).toEqual(new Set([1]));
    // Load from both sides through every kill.
    expect(run.orders).toBeGreaterThan(KILLS * 10);
    expect(run.deviceEvents).toBeGreaterThan(KILLS * DEVICES * 10);

    // The journal the gateway retained decides again exactly what the cloud received. The rules have no policy (no
    // ttl, nothing suppressed) and every action goes to the cloud, so nothing is decided and legitimately not sent.
    const replayed = await run.replay();
    expect(replayed.code, replayed.stderr).toBe(0);
    // Nothing retention dropped: the replay starts from the journal's first record, or from a checkpoint taken just
    // after it (record 1 is the rules record the first start writes, before any event).
    expect(replayed.stderr).toMatch(/replayed \d+ records from (empty state|the checkpoint at record 1 )/);
    expect([...replayed.ids].filter((id) => !received.has(id)).slice(0, 20)).toEqual([]);
    expect([...received].filter((id) => !replayed.ids.has(id)).slice(0, 20)).toEqual([]);
  }, 90_000);
});
