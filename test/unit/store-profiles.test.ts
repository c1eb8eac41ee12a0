import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { LruCache, openStore, type Store } from '../../src/store/index.js';

let dir: string;
let store: Store;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-profiles-'));
  store = await openStore(dir);
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function reopen(opts: Parameters<typeof openStore>[1] = {}): Promise<void> {
  await store.close();
  store = await openStore(dir, opts);
}

describe('ProfileStore', () => {
  test('a stored profile is read back after a reopen', async () => {
    await store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 50, site: 'north' });
    await reopen();
    await expect(store.profiles.get('dev-1')).resolves.toEqual({ id: 'dev-1', maxTemp: 50, site: 'north' });
    await expect(store.profiles.get('dev-2')).resolves.toBeUndefined();
  });

  test('peek answers synchronously once a profile, or its absence, is cached', async () => {
    await store.profiles.put('dev-1', { maxTemp: 50 });
    await reopen();
    expect(store.profiles.peek('dev-1')).toEqual({ hit: false });
    expect(store.profiles.peek('ghost')).toEqual({ hit: false });

    await store.profiles.get('dev-1');
    await store.profiles.get('ghost');
    expect(store.profiles.peek('dev-1')).toEqual({ hit: true, profile: { maxTemp: 50 } });
    expect(store.profiles.peek('ghost')).toEqual({ hit: true, profile: undefined });
  });

  test('writes keep the cache in line with the disk', async () => {
    await store.profiles.get('dev-1'); // cached as missing
    await store.profiles.put('dev-1', { v: 1 });
    expect(store.profiles.peek('dev-1')).toEqual({ hit: true, profile: { v: 1 } });

    await store.profiles.putMany([{ id: 'dev-1', profile: { v: 2 } }]);
    expect(store.profiles.peek('dev-1')).toEqual({ hit: true, profile: { v: 2 } });

    await store.profiles.delete('dev-1');
    expect(store.profiles.peek('dev-1')).toEqual({ hit: true, profile: undefined });
    await reopen();
    await expect(store.profiles.get('dev-1')).resolves.toBeUndefined();
  });

  test('a bulk write does not push the cached profiles out', async () => {
    await reopen({ profileCacheSize: 10 });
    await store.profiles.put('hot', { v: 1 });
    const batch = Array.from({ length: 100 }, (_, i) => ({ id: `bulk-${i}`, profile: { i } }));
    await store.profiles.putMany(batch);
    expect(store.profiles.peek('hot')).toEqual({ hit: true, profile: { v: 1 } });
    expect(store.profiles.peek('bulk-99')).toEqual({ hit: false });
    await expect(store.profiles.get('bulk-99')).resolves.toEqual({ i: 99 });
  });

  test('the cache holds at most the configured number of entries, the least recently used leave first', async () => {
    await reopen({ profileCacheSize: 2 });
    await store.profiles.putMany([
      { id: 'a', profile: { n: 'a' } },
      { id: 'b', profile: { n: 'b' } },
      { id: 'c', profile: { n: 'c' } },
    ]);
    await store.profiles.get('a');
    await store.profiles.get('b');
    store.profiles.peek('a'); // a is now more recent than b
    await store.profiles.get('c');
    expect(store.profiles.cachedEntries).toBe(2);
    expect(store.profiles.peek('b')).toEqual({ hit: false });
    expect(store.profiles.peek('a')).toEqual({ hit: true, profile: { n: 'a' } });
    // Misses count against the bound too.
    await store.profiles.get('nobody-1');
    await store.profiles.get('nobody-2');
    expect(store.profiles.cachedEntries).toBe(2);
  });

  test('a read that overlaps a write never leaves the old profile in the cache', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `dev-${i}`);
    await store.profiles.putMany(ids.map((id) => ({ id, profile: { v: 'old' } })));
    await reopen();
    await Promise.all(
      ids.map((id) => Promise.all([store.profiles.get(id), store.profiles.put(id, { v: 'new' })])),
    );
    for (const id of ids) {
      const peek = store.profiles.peek(id);
      if (peek.hit) expect(peek.profile).toEqual({ v: 'new' });
      await expect(store.profiles.get(id)).resolves.toEqual({ v: 'new' });
    }
  });

  test('prefetch caches many profiles, and their absence, in one go; a get meanwhile shares the read', async () => {
    const ids = Array.from({ length: 2_500 }, (_, i) => `dev-${i}`);
    await store.profiles.putMany(ids.map((id) => ({ id, profile: { n: id } })));
    await reopen();
    const reading = store.profiles.prefetch([...ids, 'ghost', 'dev-7']);
    const joined = store.profiles.get('dev-1');
    await expect(reading).resolves.toBe(2_501);
    await expect(joined).resolves.toEqual({ n: 'dev-1' });
    for (const id of ids) expect(store.profiles.peek(id)).toEqual({ hit: true, profile: { n: id } });
    expect(store.profiles.peek('ghost')).toEqual({ hit: true, profile: undefined });
    // What is cached already is not read again.
    await expect(store.profiles.prefetch(['dev-1', 'ghost'])).resolves.toBe(0);
  });

  test('a prefetch that overlaps a write never leaves the old profile in the cache', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `dev-${i}`);
    await store.profiles.putMany(ids.map((id) => ({ id, profile: { v: 'old' } })));
    await reopen();
    await Promise.all([
      store.profiles.prefetch(ids),
      ...ids.map((id) => store.profiles.put(id, { v: 'new' })),
    ]);
    for (const id of ids) {
      const peek = store.profiles.peek(id);
      if (peek.hit) expect(peek.profile).toEqual({ v: 'new' });
      await expect(store.profiles.get(id)).resolves.toEqual({ v: 'new' });
    }
  });

  test('reads asked for soon, over several turns, share one getMany; a get meanwhile joins it', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `dev-${i}`);
    await store.profiles.putMany(ids.map((id) => ({ id, profile: { n: id } })));
    await reopen();
    const getMany = vi.spyOn(store.sublevels.profiles, 'getMany');
    const reads: Array<Promise<unknown>> = [];
    // The wait for company on virtual time: the turns below take what the machine gives them, not under 5 ms.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let joined: Promise<unknown>;
    try {
      for (const id of [...ids, 'ghost']) {
        reads.push(store.profiles.getSoon(id));
        await new Promise((r) => setImmediate(r));
      }
      joined = store.profiles.get('dev-3');
      expect(getMany).not.toHaveBeenCalled();
      vi.advanceTimersByTime(5);
    } finally {
      vi.useRealTimers();
    }
    expect(await Promise.all(reads)).toEqual([...ids.map((id) => ({ n: id })), undefined]);
    await expect(joined).resolves.toEqual({ n: 'dev-3' });
    expect(getMany).toHaveBeenCalledTimes(1);
    for (const id of ids) expect(store.profiles.peek(id)).toEqual({ hit: true, profile: { n: id } });
    expect(store.profiles.peek('ghost')).toEqual({ hit: true, profile: undefined });
    // Cached now: answered without a read.
    await expect(store.profiles.getSoon('dev-1')).resolves.toEqual({ n: 'dev-1' });
    expect(getMany).toHaveBeenCalledTimes(1);
  });

  test('a write while a read waits for company never leaves the old profile in the cache', async () => {
    await store.profiles.put('dev-1', { v: 'old' });
    await reopen();
    const waiting = store.profiles.getSoon('dev-1');
    await store.profiles.put('dev-1', { v: 'new' });
    await waiting;
    const peek = store.profiles.peek('dev-1');
    if (peek.hit) expect(peek.profile).toEqual({ v: 'new' });
    await expect(store.profiles.get('dev-1')).resolves.toEqual({ v: 'new' });
  });

  test('count tells how many profiles are stored', async () => {
    await expect(store.profiles.count()).resolves.toBe(0);
    await store.profiles.putMany(Array.from({ length: 25_001 }, (_, i) => ({ id: `d${i}`, profile: {} })));
    await store.profiles.delete('d0');
    await expect(store.profiles.count()).resolves.toBe(25_000);
  });
});

describe('LruCache', () => {
  test('evicts the least recently used entry beyond its bound', () => {
    const cache = new LruCache<string, number>(3);
    for (const [k, v] of [
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ] as const)
      cache.set(k, v);
    cache.get('a');
    cache.set('d', 4);
    expect([cache.has('a'), cache.has('b'), cache.has('c'), cache.has('d')]).toEqual([
      true,
      false,
      true,
      true,
    ]);
    cache.set('c', 30); // an update refreshes recency too
    cache.set('e', 5);
    expect([cache.has('a'), cache.has('c'), cache.has('d'), cache.has('e')]).toEqual([
      false,
      true,
      true,
      true,
    ]);
    expect(cache.size).toBe(3);
  });

  test('keeps what a Map re-inserted on every use keeps, in the same order, through hits, updates and evictions', () => {
    // The reference: a Map iterates in insertion order, so re-inserting on each use keeps the least recent first.
    const op = fc.tuple(fc.constantFrom('get', 'set', 'has'), fc.integer({ min: 0, max: 12 }), fc.integer());
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(op, { maxLength: 200 }), (bound, ops) => {
        const cache = new LruCache<string, number>(bound);
        const model = new Map<string, number>();
        for (const [kind, k, value] of ops) {
          const key = `k${k}`;
          if (kind === 'has') expect(cache.has(key)).toBe(model.has(key));
          else if (kind === 'get') {
            const was = model.get(key);
            if (was !== undefined) {
              model.delete(key);
              model.set(key, was);
            }
            expect(cache.get(key)).toBe(was);
          } else {
            model.delete(key);
            model.set(key, value);
            if (model.size > bound) model.delete(model.keys().next().value as string);
            cache.set(key, value);
          }
          expect(cache.size).toBe(model.size);
        }
        // The order of eviction is the reference's order of use: new keys past the bound evict them so.
        const order = [...model.keys()];
        for (let i = model.size; i < bound; i++) cache.set(`fill${i}`, i);
        for (let i = 0; i < order.length; i++) {
          cache.set(`new${i}`, i);
          expect(cache.has(order[i] as string)).toBe(false);
          for (const later of order.slice(i + 1)) expect(cache.has(later)).toBe(true);
        }
      }),
    );
  });

  test('a zero bound caches nothing', () => {
    const cache = new LruCache<string, number>(0);
    cache.set('a', 1);
    expect(cache.get('a')).toBeUndefined();
  });
});
