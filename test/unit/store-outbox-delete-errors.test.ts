import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import type { ReopenableLevel } from '../../src/store/reopenable-level.js';
import { tempDir } from '../helpers/temp.js';

let dir: { path: string; remove(): Promise<void> };
let store: Store;

async function open(): Promise<Store> {
  return openStore(dir.path);
}

beforeEach(async () => {
  dir = await tempDir();
  store = await open();
});

afterEach(async () => {
  await store.close();
  await dir.remove();
});

function action(id: string): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: 'reading',
    action: 'log-reading',
    actor: 'dev-1',
    priority: 50,
    category: 'maintenance',
    decidedAt: 1_000,
    eventAt: 990,
    payload: {},
  };
}

describe('Outbox: a failed delete of acknowledged actions', () => {
  test('rejects, keeps the action out of the drain, and is written again once LevelDB writes', async () => {
    for (const id of ['a', 'b']) await store.outbox.add(action(id));
    const db = store.db as ReopenableLevel;
    await db.close();
    await expect(store.outbox.markDelivered('a', 2_000)).rejects.toThrow();
    expect([store.outbox.deleteErrors, store.outbox.known('a'), store.outbox.size]).toEqual([
      1,
      'delivered',
      1,
    ]);
    expect(store.outbox.next(10).map((a) => a.id)).toEqual(['b']);
    expect(store.outbox.retryingDeletes).toBeDefined();
    // Tried again, backing off, while LevelDB still refuses.
    for (let waited = 0; store.outbox.deleteErrors < 2 && waited < 5_000; waited += 20)
      await new Promise((r) => setTimeout(r, 20));
    expect(store.outbox.deleteErrors).toBeGreaterThanOrEqual(2);

    await db.reopen();
    await store.outbox.retryingDeletes;
    expect(store.outbox.retryingDeletes).toBeUndefined();
    await store.close();
    store = await open();
    expect([store.outbox.known('a'), store.outbox.known('b'), store.outbox.size]).toEqual([
      'delivered',
      'queued',
      1,
    ]);
  });

  test('a stop waits for it: written once more before LevelDB closes', async () => {
    await store.outbox.add(action('a'));
    const db = store.db as ReopenableLevel;
    await db.close();
    await expect(store.outbox.markDelivered('a', 2_000)).rejects.toThrow();
    await db.reopen();
    await store.close();
    store = await open();
    expect([store.outbox.known('a'), store.outbox.size]).toEqual(['delivered', 0]);
  });

  test('an id forgotten meanwhile is not written back', async () => {
    await store.outbox.add(action('a'));
    const db = store.db as ReopenableLevel;
    await db.close();
    await expect(store.outbox.markDelivered('a', 2_000)).rejects.toThrow();
    // A checkpoint forgets it before the delete is written again (its own write fails too: there was nothing).
    await store.outbox.forgetDeliveredBefore(3_000);
    await db.reopen();
    await store.outbox.retryingDeletes;
    await store.close();
    store = await open();
    expect([store.outbox.known('a'), store.outbox.deliveredCount, store.outbox.size]).toEqual([
      undefined,
      0,
      0,
    ]);
  });
});
