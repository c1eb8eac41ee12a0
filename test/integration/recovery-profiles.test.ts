import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { compileRuleFiles } from '../../src/rules/index.js';
import {
  DecisionLoop,
  DurableInputs,
  encodeRecord,
  Journal,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
} from '../../src/runtime/index.js';
import type { InputRecord } from '../../src/runtime/journal-records.js';
import type { Profile } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

const loaded = compileRuleFiles([
  {
    path: 'over.yaml',
    text: 'id: over\nwhen: { event: reading, where: data.n > profile.limit }\nthen: { action: over-limit, to: [upstream] }\n',
  },
]);
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
const rules = loaded.rules;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const reading = (actor: string, at: number): InputRecord => ({
  kind: 'event',
  event: { actor, type: 'reading', at, data: { n: 5 }, source: 'device' },
});

describe('the profiles a recovery judges the journal tail by', () => {
  test("the store's, read once per device; a change the tail records, from its place on; a change made during the replay, not at all", async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const dir = join(tmp.path, 'journal');
    // The tail a crash left: no checkpoint. d2's limit was raised in the middle of it.
    const journal = await Journal.open({ dir, logger: captureLogs().logger });
    const tail: InputRecord[] = [
      reading('d1', 1_000),
      reading('d2', 1_001),
      { kind: 'profiles', at: 1_002, changes: [{ id: 'd2', before: { limit: 1 }, after: { limit: 10 } }] },
      reading('d2', 1_003),
      reading('d1', 1_004),
      reading('d3', 1_005),
      reading('d3', 1_006),
    ];
    for (const record of tail) journal.append(encodeRecord(record), 'write');
    await journal.recorded();
    await journal.close();

    // The store as the crash left it: d2's change written.
    const store = new Map<string, Profile>([
      ['d1', { limit: 1 }],
      ['d2', { limit: 10 }],
      ['d3', { limit: 1 }],
    ]);
    const reads: string[] = [];
    const durable = await DurableInputs.open({ dir, logger: captureLogs().logger, registry: new Registry() });
    cleanups.push(() => durable.close());
    const restored = durable.restore(rules, { gateway: 'gw1' }, rulesRecordOf(rules, 'dir', 0));
    // A change of d1 made while the tail is still to replay: recorded first, then written to the store.
    const changed = durable.submitProfiles(
      [{ id: 'd1', before: { limit: 1 }, after: { limit: 100 } }],
      2_000,
    );
    store.set('d1', { limit: 100 });
    const decided: Array<{ actor: string; at: number; replay: boolean }> = [];
    await durable.recover({
      loop: new DecisionLoop({
        rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
        scheduler: new VirtualScheduler(1_000_000),
        outputs: {
          verdict: ({ candidate }, now, replay) =>
            decided.push({ actor: candidate.action.actor, at: now, replay }),
        },
      }),
      clock: { now: () => 1_000_000 },
      profiles: {
        peek: () => ({ hit: false }),
        get: (actor) => {
          reads.push(actor);
          return Promise.resolve(store.get(actor));
        },
      },
      pendingWrites: () => new Set(),
      forward: () => undefined,
    });
    await changed;

    expect(decided).toEqual([
      { actor: 'd1', at: 1_000, replay: true },
      { actor: 'd2', at: 1_001, replay: true },
      { actor: 'd1', at: 1_004, replay: true },
      { actor: 'd3', at: 1_005, replay: true },
      { actor: 'd3', at: 1_006, replay: true },
    ]);
    // d1 and d2 were judged by what the journal records of them; d3's stored profile was read once for both inputs.
    expect(reads).toEqual(['d3']);
  });
});
