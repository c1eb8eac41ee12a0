import { Registry } from 'prom-client';
import { afterEach, expect, test } from 'vitest';
import { DurableInputs, rulesRecordOf } from '../../src/runtime/index.js';
import type { Event } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';
import { quietRecoveryDeps } from '../helpers/quiet-recovery.js';
import { captureLogs } from './durability-faults.js';
import { QUIET_RULES } from '../helpers/quiet-rules.js';

const rules = QUIET_RULES;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(dir: string, applied: string[]) {
  const durable = await DurableInputs.open({ dir, logger: captureLogs().logger, registry: new Registry() });
  cleanups.push(() => durable.close());
  const restored = durable.restore(rules, { gateway: 'gw1' }, rulesRecordOf(rules, 'dir', 0));
  await durable.recover(quietRecoveryDeps(restored, { onLiveEvent: (ev) => applied.push(ev.actor) }));
  return { durable, engine: restored.engine };
}

const heartbeat = (actor: string, at: number): Event => ({
  actor,
  type: 'heartbeat',
  at,
  data: {},
  source: 'device',
});

test('a QoS 0 event nobody waits for is recorded and applied in order without a promise, and one when asked', async () => {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const applied: string[] = [];
  const { durable } = await open(`${tmp.path}/journal`, applied);
  expect(durable.submitUnawaited(heartbeat('d1', 1_000_001), undefined, () => false)).toBeUndefined();
  expect(durable.submitUnawaited(heartbeat('d2', 1_000_002), undefined, () => false)).toBeUndefined();
  const waited = durable.submitUnawaited(heartbeat('d3', 1_000_003), undefined, () => true);
  expect(waited).toBeInstanceOf(Promise);
  await waited;
  expect(applied).toEqual(['d1', 'd2', 'd3']);
  await durable.submitEvent(heartbeat('d4', 1_000_004), undefined, 'sync');
  expect(applied).toEqual(['d1', 'd2', 'd3', 'd4']);
  await durable.close();

  // All four were recorded: a new start has their silences (from the checkpoint taken at close, or the journal).
  const again = await open(`${tmp.path}/journal`, []);
  expect(
    again.engine
      .pendingTimers()
      .map((t) => t.actor)
      .sort(),
  ).toEqual(['d1', 'd2', 'd3', 'd4']);
}, 30_000);
