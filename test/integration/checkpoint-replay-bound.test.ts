import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { DurableInputs, rulesRecordOf, type DurabilitySettings } from '../../src/runtime/index.js';
import { tempDir } from '../helpers/temp.js';
import { quietRecoveryDeps } from '../helpers/quiet-recovery.js';
import { captureLogs } from './durability-faults.js';
import { QUIET_RULES } from '../helpers/quiet-rules.js';

/**
 * A checkpoint is taken once the journal since the last one holds `replayRecords` records, without waiting for
 * `checkpointRecords` or the interval (the cost guard is in test/unit/checkpoint-policy.test.ts).
 */
const rules = QUIET_RULES;

/** Polls `read` until it gives `want`, for at most 10 s. */
async function until(read: () => Promise<number>, want: number, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await read()) !== want) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function live(dir: string, settings: Partial<DurabilitySettings>) {
  const registry = new Registry();
  const durable = await DurableInputs.open({ dir, logger: captureLogs().logger, registry, settings });
  cleanups.push(() => durable.close());
  const restored = durable.restore(rules, { gateway: 'gw1' }, rulesRecordOf(rules, 'dir', 0));
  await durable.recover(quietRecoveryDeps(restored));
  const written = async (): Promise<number> => {
    const m = (await registry.metrics()).match(/^vigil_checkpoints_total\{result="written"\} (\d+)$/m);
    return Number(m?.[1] ?? 0);
  };
  // Recovery's own checkpoint (a fresh journal) comes first.
  await until(written, 1, 'the checkpoint after recovery');
  const heartbeats = async (n: number): Promise<void> => {
    const recorded: Array<Promise<void>> = [];
    for (let i = 0; i < n; i++) {
      const ev = {
        actor: `d${i % 100}`,
        type: 'heartbeat',
        at: 1_000_000,
        data: {},
        source: 'device' as const,
      };
      recorded.push(durable.submitEvent(ev, undefined, 'write'));
    }
    await Promise.all(recorded);
  };
  return { written, heartbeats };
}

describe('checkpoints bound the replay', () => {
  test('a tail of replayRecords is checkpointed without waiting for checkpointRecords; a shorter one is not', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const gw = await live(`${tmp.path}/journal`, {
      checkpointIntervalMs: 3_600_000,
      checkpointRecords: 1_000_000_000,
      replayRecords: 1_000,
    });
    // The journal also holds a few records of its own (rules, clock): a margin of 100.
    await gw.heartbeats(900);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await gw.written()).toBe(1);

    await gw.heartbeats(100);
    await until(gw.written, 2, 'the checkpoint due by replayRecords');
  }, 60_000);
});
