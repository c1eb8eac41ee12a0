import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import {
  DecisionLoop,
  DurableInputs,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
  type Clock,
} from '../../src/runtime/index.js';
import type { Action } from '../../src/shared/index.js';
import { READING_RULES } from '../e2e/crash-harness.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function readingRules(): RuleSet {
  const loaded = compileRuleFiles(Object.entries(READING_RULES).map(([path, text]) => ({ path, text })));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return loaded.rules;
}

interface Run {
  durable: DurableInputs;
  /** The gateway time of each checkpoint's `onCheckpoint`, in order. */
  horizons: number[];
  /** Actions decided, `replay` marking those decided again by recovery. */
  decided: Array<{ action: Action; replay: boolean }>;
  publish(n: number): Promise<void>;
}

/** DurableInputs with the decision loop over the journal in `dir`, recovered and live, on `clock`. */
async function start(dir: string, clock: Clock): Promise<Run> {
  const rules = readingRules();
  const horizons: number[] = [];
  const decided: Run['decided'] = [];
  const durable = await DurableInputs.open({
    dir,
    logger: captureLogs().logger,
    registry: new Registry(),
    onCheckpoint: (at) => horizons.push(at),
  });
  cleanups.push(() => durable.close());
  const restored = durable.restore(rules, { gateway: 'gw1' }, rulesRecordOf(rules, 'dir', 0));
  const loop = new DecisionLoop({
    rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
    scheduler: new VirtualScheduler(),
    outputs: { verdict: (v, _now, replay) => decided.push({ action: v.candidate.action, replay }) },
  });
  await durable.recover({
    loop,
    clock,
    profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
    pendingWrites: () => [],
    // These rules emit nothing.
    forward: () => undefined,
  });
  const publish = (n: number) =>
    durable.submitEvent(
      { actor: 'dev-1', type: 'telemetry', at: clock.now(), data: { n }, source: 'device' },
      undefined,
      'sync',
    );
  return { durable, horizons, decided, publish };
}

describe('after each checkpoint, the time before which recovery decides nothing again', () => {
  test('is the time of the checkpoint before it, also across restarts and when the newest cannot be read', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const dir = join(tmp.path, 'journal');
    let now = 10_000;
    const clock: Clock = { now: () => now };

    // The first checkpoint has none before it: nothing may be forgotten yet.
    const first = await start(dir, clock);
    // The checkpoint recovery takes when it starts from none.
    await first.durable.checkpoint();
    expect(first.horizons).toEqual([]);
    now = 11_000;
    await first.publish(1);
    await first.durable.checkpoint();
    now = 12_000;
    await first.publish(2);
    await first.durable.checkpoint();
    expect(first.horizons).toEqual([10_000, 11_000]);
    // A clean stop takes a last checkpoint.
    now = 13_000;
    await first.durable.close();
    expect(first.horizons).toEqual([10_000, 11_000, 12_000]);

    // After a restart, the checkpoint before the next one is the one recovery started from.
    const second = await start(dir, clock);
    expect(second.decided).toEqual([]);
    now = 14_000;
    await second.publish(3);
    await second.durable.checkpoint();
    expect(second.horizons).toEqual([13_000]);
    now = 14_500;
    await second.publish(4);
    await second.durable.close();

    // The newest checkpoint (taken on stop) damaged: recovery starts from the one before (14,000) and decides
    // reading 4 again, so nothing delivered since 14,000 may be forgotten after the checkpoint that follows.
    const newest = join(dir, `checkpoint-${String(await newestSeq(dir)).padStart(16, '0')}.cbor`);
    const bytes = await readFile(newest);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    await writeFile(newest, bytes);
    now = 15_000;
    const third = await start(dir, clock);
    // The checkpoint recovery takes after a replay.
    await third.durable.checkpoint();
    expect(third.decided.map((d) => [d.action.payload.n, d.replay])).toEqual([[4, true]]);
    expect(third.horizons).toEqual([14_000]);
  });
});

async function newestSeq(dir: string): Promise<number> {
  const seqs = (await readdir(dir))
    .map((n) => /^checkpoint-(\d{16})\.cbor$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
  return Math.max(...seqs);
}
