import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { openStore, type OutboxLimits, type Store } from '../../src/store/index.js';

let dir: string;
let store: Store;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-delivered-'));
  store = await openStore(dir);
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function reopen(outbox: Partial<OutboxLimits> = {}): Promise<void> {
  await store.close();
  store = await openStore(dir, { outbox });
}

function action(id: string, priority = 50): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: 'reading',
    action: 'log-reading',
    actor: 'dev-1',
    priority,
    category: 'maintenance',
    decidedAt: 1_000,
    eventAt: 990,
    payload: {},
  };
}

const ids = (actions: readonly Action[]): string[] => actions.map((a) => a.id);

/** Queues each id and marks it delivered at its time, as the uplink does on PUBACK. */
async function deliver(...delivered: Array<[id: string, atMs: number]>): Promise<void> {
  for (const [id, at] of delivered) {
    await store.outbox.add(action(id));
    await store.outbox.markDelivered(id, at);
  }
}

/** The ids whose add is refused as already delivered (each probe queues the others; they are removed again). */
async function stillDelivered(candidates: string[]): Promise<string[]> {
  const refused: string[] = [];
  for (const id of candidates) {
    const result = await store.outbox.add(action(id));
    if (result.status === 'delivered') refused.push(id);
    else await store.outbox.remove(id);
  }
  return refused;
}

describe('Outbox: ids the cloud acknowledged', () => {
  test('an action decided again after its PUBACK is not queued again, also after a reopen', async () => {
    await store.outbox.add(action('a'));
    await store.outbox.add(action('b'));
    await store.outbox.markDelivered('a', 5_000);
    expect(ids(store.outbox.next(10))).toEqual(['b']);
    expect(store.outbox.deliveredCount).toBe(1);

    await expect(store.outbox.add(action('a'))).resolves.toEqual({ status: 'delivered', dropped: [] });
    expect(ids(store.outbox.next(10))).toEqual(['b']);

    await reopen();
    expect(store.outbox.deliveredCount).toBe(1);
    await expect(store.outbox.add(action('a'))).resolves.toEqual({ status: 'delivered', dropped: [] });
    // Still queued, not delivered: decided again, it is kept once.
    await expect(store.outbox.add(action('b'))).resolves.toEqual({ status: 'duplicate', dropped: [] });
    expect(ids(store.outbox.next(10))).toEqual(['b']);
    expect(store.outbox.size).toBe(1);
  });

  test('an id acknowledged while not queued (or twice) is remembered once', async () => {
    await store.outbox.markDelivered('x', 1_000);
    await store.outbox.markDelivered('x', 2_000);
    expect(store.outbox.deliveredCount).toBe(1);
    await reopen();
    await expect(store.outbox.add(action('x'))).resolves.toMatchObject({ status: 'delivered' });
    expect(store.outbox.size).toBe(0);
  });

  test('forgetting by time drops the ids delivered before it, on disk too, and keeps the later ones', async () => {
    await deliver(['d1', 1_000], ['d2', 2_000], ['d3', 3_000], ['d4', 4_000]);
    await expect(store.outbox.forgetDeliveredBefore(3_000)).resolves.toBe(2);
    expect(store.outbox.deliveredCount).toBe(2);
    expect(await stillDelivered(['d1', 'd2', 'd3', 'd4'])).toEqual(['d3', 'd4']);

    await reopen();
    expect(store.outbox.deliveredCount).toBe(2);
    expect(await stillDelivered(['d1', 'd2', 'd3', 'd4'])).toEqual(['d3', 'd4']);
    // An earlier time than already forgotten changes nothing.
    await expect(store.outbox.forgetDeliveredBefore(2_500)).resolves.toBe(0);
    expect(store.outbox.deliveredCount).toBe(2);
  });

  test('a delivery timed earlier than the latest (the clock moved back) is kept as long as the latest', async () => {
    await deliver(['late', 5_000], ['early', 4_000]);
    await store.outbox.forgetDeliveredBefore(5_000);
    expect(await stillDelivered(['late', 'early'])).toEqual(['late', 'early']);
    await store.outbox.forgetDeliveredBefore(5_001);
    expect(store.outbox.deliveredCount).toBe(0);
  });

  test('many ids are forgotten a chunk at a time while actions keep being queued', async () => {
    await Promise.all(
      Array.from({ length: 2_500 }, (_, i) => store.outbox.markDelivered(`old-${i}`, 1_000 + i)),
    );
    await store.outbox.markDelivered('recent', 10_000);
    const forgetting = store.outbox.forgetDeliveredBefore(9_000);
    const queued = await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.outbox.add(action(`new-${i}`))),
    );
    expect(queued.every((r) => r.status === 'queued')).toBe(true);
    await expect(forgetting).resolves.toBe(2_500);
    await reopen();
    expect(store.outbox.deliveredCount).toBe(1);
    expect(store.outbox.size).toBe(50);
  });

  test('past maxDelivered the oldest ids are dropped and counted, also when the bound is lowered', async () => {
    await reopen({ maxDelivered: 3 });
    await deliver(['c1', 1_000], ['c2', 2_000], ['c3', 3_000], ['c4', 4_000], ['c5', 5_000]);
    expect(store.outbox.deliveredCount).toBe(3);
    expect(store.outbox.deliveredDropped).toBe(2);
    expect(await stillDelivered(['c1', 'c2', 'c3', 'c4', 'c5'])).toEqual(['c3', 'c4', 'c5']);

    await reopen({ maxDelivered: 3 });
    expect([store.outbox.deliveredCount, store.outbox.deliveredDropped]).toEqual([3, 0]);
    await reopen({ maxDelivered: 1 });
    expect([store.outbox.deliveredCount, store.outbox.deliveredDropped]).toEqual([1, 2]);
    expect(await stillDelivered(['c3', 'c4', 'c5'])).toEqual(['c5']);
    await reopen();
    expect(store.outbox.deliveredCount).toBe(1);
  });

  test('the bound holds over many deliveries: the newest are remembered', async () => {
    await reopen({ maxDelivered: 100 });
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => store.outbox.markDelivered(`m-${i}`, i)));
    expect(store.outbox.deliveredCount).toBe(100);
    expect(store.outbox.deliveredDropped).toBe(9_900);
    expect(await stillDelivered(['m-0', 'm-9899', 'm-9900', 'm-9999'])).toEqual(['m-9900', 'm-9999']);
    await expect(store.outbox.forgetDeliveredBefore(9_950)).resolves.toBe(50);
    await reopen({ maxDelivered: 100 });
    expect(store.outbox.deliveredCount).toBe(50);
  });
});
