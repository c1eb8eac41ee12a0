import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { DurableInputs, rulesRecordOf } from '../../src/runtime/index.js';
import { openStore } from '../../src/store/index.js';
import { tempDir } from '../helpers/temp.js';
import { quietRecoveryDeps } from '../helpers/quiet-recovery.js';
import { captureLogs } from './durability-faults.js';
import { QUIET_RULES } from '../helpers/quiet-rules.js';

/**
 * The outboxes' writes are not synced one by one: a checkpoint makes them durable (one synced LevelDB write) before
 * it forgets the inputs they were decided from, and is not written when that fails.
 */
const rules = QUIET_RULES;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function live(
  dir: string,
  syncWrites: () => Promise<void>,
): Promise<{ durable: DurableInputs; registry: Registry }> {
  const registry = new Registry();
  const durable = await DurableInputs.open({
    dir,
    logger: captureLogs().logger,
    registry,
    settings: { checkpointIntervalMs: 3_600_000, checkpointRecords: 1_000_000_000 },
  });
  cleanups.push(() => durable.close());
  const restored = durable.restore(rules, { gateway: 'gw1' }, rulesRecordOf(rules, 'dir', 0));
  await durable.recover(quietRecoveryDeps(restored, { syncWrites }));
  return { durable, registry };
}

const checkpointFiles = async (dir: string) =>
  (await readdir(dir)).filter((name) => /^checkpoint-\d+\.cbor$/.test(name));

describe('checkpoints sync the store first', () => {
  test('the store is synced before the checkpoint is written, and a failed sync writes no checkpoint', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const store = await openStore(join(tmp.path, 'store'));
    cleanups.push(() => store.close());
    const dir = join(tmp.path, 'journal');
    let failing = true;
    const seenAtSync: string[][] = [];
    const { durable, registry } = await live(dir, async () => {
      seenAtSync.push(await checkpointFiles(dir));
      if (failing) throw new Error('LevelDB cannot sync');
      await store.sync();
    });
    // Recovery's checkpoint (a fresh journal) met the failing sync.
    await durable.checkpoint();
    await durable.submitEvent(
      { actor: 'd1', type: 'heartbeat', at: 1_000_000, data: {}, source: 'device' },
      undefined,
      'sync',
    );
    await durable.checkpoint();
    expect(await checkpointFiles(dir)).toEqual([]);
    const failed = (await registry.metrics()).match(/^vigil_checkpoints_total\{result="failed"\} (\d+)$/m);
    expect(Number(failed?.[1])).toBeGreaterThanOrEqual(1);

    failing = false;
    await durable.checkpoint();
    expect(await checkpointFiles(dir)).toHaveLength(1);
    // Every sync came before the checkpoint it was for was on disk.
    expect(seenAtSync.every((files) => files.length === 0)).toBe(true);
    expect(await store.sublevels.state.get('synced')).toBeGreaterThan(0);
  });
});
