import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { compileRuleFiles } from '../../src/rules/index.js';
import {
  decodeRecord,
  DecisionLoop,
  DurableInputs,
  encodeRecord,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
} from '../../src/runtime/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

/**
 * Housekeeping is an input like the others: a prune record in the journal makes recovery forget what the live
 * gateway forgot, at the same place, so the recovered state is the state the gateway held.
 */
const loaded = compileRuleFiles([
  {
    path: 'burst.yaml',
    text: 'id: burst\nwhen: { event: reading, count: 3, within: 10s }\nthen: { action: slow-down, to: [upstream] }\n',
  },
]);
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
const rules = loaded.rules;
const record = rulesRecordOf(rules, 'dir', 0);

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A decision loop over the journal in `dir`, recovered from what it holds. */
async function start(dir: string, now: number): Promise<{ durable: DurableInputs; loop: DecisionLoop }> {
  const durable = await DurableInputs.open({
    dir,
    logger: captureLogs().logger,
    registry: new Registry(),
    settings: { checkpointIntervalMs: 3_600_000, checkpointRecords: 1_000_000_000 },
  });
  const restored = durable.restore(rules, { gateway: 'gw1' }, record);
  const loop = new DecisionLoop({
    rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
    scheduler: new VirtualScheduler(now),
    outputs: { verdict: () => undefined },
  });
  await durable.recover({
    loop,
    clock: { now: () => now },
    profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
    pendingWrites: () => new Set(),
    forward: () => undefined,
  });
  return { durable, loop };
}

describe('journaled housekeeping', () => {
  test('a prune record keeps its time', () => {
    expect(decodeRecord(encodeRecord({ kind: 'prune', at: 1_234_567 }))).toEqual({
      kind: 'prune',
      at: 1_234_567,
    });
  });

  test('recovery forgets the groups the live gateway pruned, at the same place in the journal', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const dir = join(tmp.path, 'journal');
    const t0 = 1_000_000;
    const live = await start(dir, t0);
    const reading = (actor: string, at: number) =>
      live.durable.submitEvent(
        { actor, type: 'reading', at, data: {}, source: 'device' },
        undefined,
        'write',
      );
    for (const actor of ['d1', 'd2', 'd3']) await reading(actor, t0);
    expect(live.loop.rules.engine.groupCount()).toBe(3);
    // 10 s later the readings are still in their windows; a moment after, nothing can complete from them.
    await live.durable.submitPrune(t0 + 10_000);
    expect(live.loop.rules.engine.groupCount()).toBe(3);
    await live.durable.submitPrune(t0 + 10_001);
    expect(live.loop.rules.engine.groupCount()).toBe(0);
    await reading('d4', t0 + 12_000);
    const state = live.loop.rules.engine.snapshot();
    expect(state.scenarios[0]?.groups.map(([group]) => group)).toEqual(['d4']);

    // The process dies (no checkpoint, no close): recovery replays the whole journal, prunes included.
    const recovered = await start(dir, t0 + 13_000);
    cleanups.push(() => live.durable.close().catch(() => undefined));
    expect(recovered.loop.rules.engine.snapshot().scenarios).toEqual(state.scenarios);
    await recovered.durable.close();
  });
});
