import { Registry } from 'prom-client';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, expect, test } from 'vitest';
import { DurableInputs, rulesRecordOf } from '../../src/runtime/index.js';
import type { Event } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';
import { quietRecoveryDeps } from '../helpers/quiet-recovery.js';
import { captureLogs } from './durability-faults.js';
import { QUIET_RULES } from '../helpers/quiet-rules.js';

// A device's connection and disconnection records may wait for company in the journal (a reconnect storm shares its
// writes); nothing acknowledged waits for them, and they are applied in journal order.

const rules = QUIET_RULES;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Inputs applied, as `actor:type`. Presence records wait far longer than a test may take, unless brought forward. */
async function open(dir: string, applied: string[]): Promise<DurableInputs> {
  const durable = await DurableInputs.open({
    dir,
    logger: captureLogs().logger,
    registry: new Registry(),
    settings: { presenceCommitMs: 600_000 },
  });
  cleanups.push(() => durable.close());
  const restored = durable.restore(rules, { gateway: 'gw1' }, rulesRecordOf(rules, 'dir', 0));
  await durable.recover(
    quietRecoveryDeps(restored, { onLiveEvent: (ev) => applied.push(`${ev.actor}:${ev.type}`) }),
  );
  return durable;
}

const ev = (actor: string, type: string, at: number, source: Event['source']): Event => ({
  actor,
  type,
  at,
  data: {},
  source,
});

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

test('connections wait for company; a QoS 1 publish after them is synced at once and applied after them', async () => {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const applied: string[] = [];
  const durable = await open(`${tmp.path}/journal`, applied);
  // The journal's first commit (its segment made and synced) is behind it.
  await durable.submitEvent(ev('d0', 'heartbeat', 1_000_000, 'device'), undefined, 'sync');
  void durable.submitEvent(ev('d1', 'connected', 1_000_001, 'broker'), undefined, 'write');
  await turn();
  void durable.submitEvent(ev('d2', 'connected', 1_000_002, 'broker'), undefined, 'write');
  // Far longer than a commit takes: without waiting for company they would be applied by now.
  await sleep(300);
  expect(applied).toEqual(['d0:heartbeat']);
  await durable.submitEvent(ev('d1', 'heartbeat', 1_000_003, 'device'), undefined, 'sync');
  expect(applied).toEqual(['d0:heartbeat', 'd1:connected', 'd2:connected', 'd1:heartbeat']);
}, 30_000);

test('a QoS 0 event brings them forward too, and closing records what still waits', async () => {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const applied: string[] = [];
  const durable = await open(`${tmp.path}/journal`, applied);
  void durable.submitEvent(ev('d1', 'connected', 1_000_001, 'broker'), undefined, 'write');
  await turn();
  await durable.submitEvent(ev('d1', 'heartbeat', 1_000_002, 'device'), undefined, 'write');
  expect(applied).toEqual(['d1:connected', 'd1:heartbeat']);
  const disconnected = { ...ev('d1', 'disconnected', 1_000_003, 'broker'), data: { reason: 'closed' } };
  void durable.submitEvent(disconnected, undefined, 'write');
  // Far longer than a commit takes: without waiting for company they would be applied by now.
  await sleep(300);
  expect(applied).toEqual(['d1:connected', 'd1:heartbeat']);
  await durable.close();
  expect(applied).toEqual(['d1:connected', 'd1:heartbeat', 'd1:disconnected']);
}, 30_000);
