import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { openStore, type OutboxLimits, type Store } from '../../src/store/index.js';
import { DeliveredIds } from '../../src/store/delivered-ids.js';
import type { ReopenableLevel } from '../../src/store/reopenable-level.js';
import { tempDir } from '../helpers/temp.js';

let dir: { path: string; remove(): Promise<void> };
let store: Store;

beforeEach(async () => {
  dir = await tempDir();
  store = await openStore(dir.path);
});

afterEach(async () => {
  await store.close();
  await dir.remove();
});

async function reopen(outbox: Partial<OutboxLimits> = {}): Promise<void> {
  await store.close();
  store = await openStore(dir.path, { outbox });
}

function action(id: string, priority = 50, decidedAt = 1_000): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: 'reading',
    action: 'log-reading',
    actor: 'dev-1',
    priority,
    category: 'maintenance',
    decidedAt,
    eventAt: decidedAt - 10,
    payload: {},
  };
}

const ids = (actions: readonly Action[]): string[] => actions.map((a) => a.id);
const NOT_AGAIN = { status: 'dropped', dropped: [] };

describe('Outbox: ids of actions dropped to make room', () => {
  test('an evicted action decided again is not queued again, also after a reopen', async () => {
    await reopen({ maxCount: 2 });
    for (const id of ['a', 'b', 'c']) await store.outbox.add(action(id));
    expect([store.outbox.known('a'), store.outbox.droppedCount]).toEqual(['dropped', 1]);
    await expect(store.outbox.add(action('a'))).resolves.toEqual(NOT_AGAIN);
    expect(ids(store.outbox.next(10))).toEqual(['b', 'c']);

    await reopen({ maxCount: 2 });
    expect([store.outbox.known('a'), store.outbox.known('b'), store.outbox.droppedCount]).toEqual([
      'dropped',
      'queued',
      1,
    ]);
    await expect(store.outbox.add(action('a'))).resolves.toEqual(NOT_AGAIN);
    expect(ids(store.outbox.next(10))).toEqual(['b', 'c']);
  });

  test('an action refused for want of room is not queued when decided again, even once there is room', async () => {
    await reopen({ maxCount: 1 });
    await store.outbox.add(action('high', 90));
    const low = action('low', 10);
    await expect(store.outbox.add(low)).resolves.toEqual({ status: 'dropped', dropped: [low] });
    await store.outbox.markDelivered('high', 2_000);
    expect(store.outbox.size).toBe(0);
    await expect(store.outbox.add(low)).resolves.toEqual(NOT_AGAIN);
    await reopen({ maxCount: 1 });
    expect(store.outbox.known('low')).toBe('dropped');
    await expect(store.outbox.add(low)).resolves.toEqual(NOT_AGAIN);
    expect(store.outbox.size).toBe(0);
  });

  test('forgotten with the delivered ids, by the time of the decision that made room, on disk too', async () => {
    await reopen({ maxCount: 1 });
    // Each drops the one before it, at its own decision time.
    for (const [i, id] of ['d1', 'd2', 'd3', 'd4'].entries())
      await store.outbox.add(action(id, 50, 1_000 * (i + 1)));
    expect(['d1', 'd2', 'd3'].map((id) => store.outbox.known(id))).toEqual(['dropped', 'dropped', 'dropped']);
    // d1 was dropped by d2's decision (2,000), d2 by d3's (3,000), d3 by d4's (4,000).
    await expect(store.outbox.forgetDeliveredBefore(3_500)).resolves.toBe(2);
    expect(['d1', 'd2', 'd3'].map((id) => store.outbox.known(id))).toEqual([undefined, undefined, 'dropped']);
    await reopen({ maxCount: 1 });
    expect(store.outbox.droppedCount).toBe(1);
    expect(store.outbox.known('d3')).toBe('dropped');
  });

  test('past maxDropped the oldest are forgotten, also when the bound is lowered', async () => {
    await reopen({ maxCount: 1, maxDropped: 2 });
    for (const id of ['m1', 'm2', 'm3', 'm4', 'm5']) await store.outbox.add(action(id));
    expect(['m1', 'm2', 'm3', 'm4'].map((id) => store.outbox.known(id))).toEqual([
      undefined,
      undefined,
      'dropped',
      'dropped',
    ]);
    await reopen({ maxCount: 1, maxDropped: 2 });
    expect(store.outbox.droppedCount).toBe(2);
    await reopen({ maxCount: 1, maxDropped: 1 });
    expect([store.outbox.known('m3'), store.outbox.known('m4')]).toEqual([undefined, 'dropped']);
    await reopen({ maxCount: 1 });
    expect(store.outbox.droppedCount).toBe(1);
  });

  test('a failed write remembers no dropped id; the add tried again drops and remembers', async () => {
    await reopen({ maxCount: 1 });
    await store.outbox.add(action('a'));
    const db = store.db as ReopenableLevel;
    await db.close();
    await expect(store.outbox.add(action('b'))).rejects.toThrow();
    await expect(store.outbox.add(action('c', 10))).rejects.toThrow();
    expect([store.outbox.known('a'), store.outbox.known('c'), ids(store.outbox.next(10))]).toEqual([
      'queued',
      undefined,
      ['a'],
    ]);
    await db.reopen();
    expect(await store.outbox.add(action('b'))).toMatchObject({ status: 'queued', dropped: [action('a')] });
    expect(await store.outbox.add(action('c', 10))).toMatchObject({ status: 'dropped' });
    await reopen({ maxCount: 1 });
    expect([store.outbox.known('a'), store.outbox.known('c'), ids(store.outbox.next(10))]).toEqual([
      'dropped',
      'dropped',
      ['b'],
    ]);
  });
});

describe('DeliveredIds', () => {
  test('an id taken back and remembered again keeps its new place and time', () => {
    const held = new DeliveredIds(2);
    const evicted: string[] = [];
    held.add('a', 1, evicted);
    held.add('b', 2, evicted);
    expect(held.forget('a')).toBe(true);
    held.add('a', 3, evicted);
    expect([held.size, evicted]).toEqual([2, []]);
    // The oldest is b now, not a's earlier place.
    held.add('c', 4, evicted);
    expect(evicted).toEqual(['b']);
    expect(held.takeBefore(3.5, 10)).toEqual(['a']);
    expect([held.has('c'), held.size]).toEqual([true, 1]);
  });
});
