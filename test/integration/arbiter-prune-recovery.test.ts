import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import {
  DecisionLoop,
  DurableInputs,
  replayJournal,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
} from '../../src/runtime/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

/**
 * The arbiter forgets what its windows no longer see in the housekeeping pass, which is a journal record: recovery
 * forgets it at the same place, so a later rules swap that widens a window finds the same memory live and after a
 * crash, and decides alike.
 */
const OFFER =
  'id: offer\ncategory: offer\nwhen: { event: looked }\nthen: { action: offer, to: [upstream] }\n';

function rulesWith(per: string): RuleSet {
  const loaded = compileRuleFiles([
    { path: 'offer.yaml', text: OFFER },
    { path: 'policy.yaml', text: `policy:\n  contact: { max: 1, per: ${per}, categories: [offer] }\n` },
  ]);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return loaded.rules;
}

const hourly = rulesWith('1h');
const daily = rulesWith('24h');

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Started {
  durable: DurableInputs;
  loop: DecisionLoop;
  /** Each verdict as `at suppressed-reason` (`sent` when sent), replays included. */
  verdicts: string[];
}

/** A decision loop over the journal in `dir` with `rules` at start, recovered from what the journal holds. */
async function start(dir: string, rules: RuleSet, now: number, arbiterEntries?: number): Promise<Started> {
  const durable = await DurableInputs.open({
    dir,
    logger: captureLogs().logger,
    registry: new Registry(),
    settings: { checkpointIntervalMs: 3_600_000, checkpointRecords: 1_000_000_000 },
  });
  const restored = durable.restore(rules, { gateway: 'gw1' }, rulesRecordOf(rules, 'dir', 0));
  const verdicts: string[] = [];
  const loop = new DecisionLoop({
    rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
    scheduler: new VirtualScheduler(now),
    outputs: {
      verdict: (v, at) =>
        verdicts.push(`${String(at)} ${v.candidate.action.actor} ${v.suppressed ?? 'sent'}`),
      evicted: (entries, at) => verdicts.push(`${String(at)} evicted ${String(entries)}`),
    },
    ...(arbiterEntries === undefined ? {} : { arbiterEntries }),
  });
  await durable.recover({
    loop,
    clock: { now: () => now },
    profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
    pendingWrites: () => new Set(),
    forward: () => undefined,
  });
  return { durable, loop, verdicts };
}

const HOUR = 3_600_000;

describe('arbiter memory and housekeeping', () => {
  test('recovery decides as the live gateway did around a prune and a rules swap that widens a window', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const dir = join(tmp.path, 'journal');
    const t0 = 10 * HOUR;
    const live = await start(dir, hourly, t0);
    cleanups.push(() => live.durable.close().catch(() => undefined));
    const looked = (at: number) =>
      live.durable.submitEvent(
        { actor: 'd1', type: 'looked', at, data: {}, source: 'device' },
        undefined,
        'write',
      );

    await looked(t0);
    // Two hours on, the hourly cap no longer sees the offer: the housekeeping pass forgets it.
    await live.durable.submitPrune(t0 + 2 * HOUR);
    expect(live.loop.rules.arbiter.snapshot().contact).toEqual([]);
    // The cap now counts a day; the offer sent ten hours ago was forgotten before, so the next one goes.
    await live.durable.submitRules(daily, rulesRecordOf(daily, 'dir', 0), t0 + 2 * HOUR + 1);
    await looked(t0 + 3 * HOUR);
    await looked(t0 + 4 * HOUR);
    expect(live.verdicts).toEqual([
      `${String(t0)} d1 sent`,
      `${String(t0 + 3 * HOUR)} d1 sent`,
      `${String(t0 + 4 * HOUR)} d1 contact`,
    ]);
    const state = live.loop.rules.arbiter.snapshot();

    // The process dies (no checkpoint, no close): recovery replays the whole journal, the prune included.
    const recovered = await start(dir, daily, t0 + 5 * HOUR);
    expect(recovered.verdicts).toEqual(live.verdicts);
    expect(recovered.loop.rules.arbiter.snapshot()).toEqual(state);
    await recovered.durable.close();

    // `vigil replay --journal` applies the same records the same way.
    const replayed = await replayJournal({ dir, gateway: 'gw1', logger: captureLogs().logger });
    expect(
      replayed?.actions.map((a) => `${String(a.decidedAt)} ${a.actor} ${a.suppressed ?? 'sent'}`),
    ).toEqual(live.verdicts);
  });

  test('recovery from a checkpoint forgets what the live arbiter forgot over its bound, and decides alike', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const dir = join(tmp.path, 'journal');
    const t0 = 10 * HOUR;
    const live = await start(dir, hourly, t0, 8);
    cleanups.push(() => live.durable.close().catch(() => undefined));
    const looked = (actor: string, at: number) =>
      live.durable.submitEvent({ actor, type: 'looked', at, data: {}, source: 'device' }, undefined, 'write');
    // Thirty devices each looking twice, a few minutes apart: each offer a contact key, far more than 8.
    const MIN = 60_000;
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 30; i++) {
        await looked(`d${String(i % 12)}`, t0 + round * 40 * MIN + i * MIN);
        if (i === 15) await live.durable.submitPrune(t0 + round * 40 * MIN + i * MIN - HOUR);
      }
      if (round === 0) {
        // The first joins the checkpoint the start may have begun; the second is of the state now.
        await live.durable.checkpoint();
        await live.durable.checkpoint();
      }
    }
    expect(live.verdicts.some((v) => v.includes('evicted'))).toBe(true);
    expect(live.verdicts.some((v) => v.endsWith('contact'))).toBe(true);
    expect(live.loop.rules.arbiter.size).toBeLessThanOrEqual(8);
    const afterCheckpoint = live.verdicts.slice(
      live.verdicts.findIndex((v) => v.startsWith(String(t0 + 40 * MIN))),
    );
    const state = live.loop.rules.arbiter.snapshot();

    // The process dies: recovery starts from the checkpoint and replays the second round.
    const recovered = await start(dir, hourly, t0 + 2 * HOUR, 8);
    expect(recovered.verdicts).toEqual(afterCheckpoint);
    expect(recovered.loop.rules.arbiter.snapshot()).toEqual(state);
    await recovered.durable.close();
  });
});
