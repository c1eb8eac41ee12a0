import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { StoreIoError } from '../../src/shared/index.js';
import { openStore, type OutboxLimits, type Store } from '../../src/store/index.js';
import { OutboxModel } from '../helpers/outbox-model.js';

let dir: string;
let store: Store;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-outbox-'));
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

function action(id: string, priority: number, payload: Record<string, unknown> = {}): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: `s-${priority}`,
    action: 'notify',
    actor: 'dev-1',
    priority,
    category: 'maintenance',
    decidedAt: 1_000,
    eventAt: 990,
    payload,
  };
}

const ids = (actions: readonly Action[]): string[] => actions.map((a) => a.id);

describe('Outbox', () => {
  test('drains highest priority first, first in first out within a priority, also after a reopen', async () => {
    for (const [id, p] of [
      ['a', 40],
      ['b', 70],
      ['c', 40],
      ['d', 100],
      ['e', 70],
      ['f', 0],
    ] as const) {
      await store.outbox.add(action(id, p));
    }
    expect(ids(store.outbox.next(10))).toEqual(['d', 'b', 'e', 'a', 'c', 'f']);
    expect(ids(store.outbox.next(2))).toEqual(['d', 'b']);

    await reopen();
    expect(ids(store.outbox.next(10))).toEqual(['d', 'b', 'e', 'a', 'c', 'f']);
    // Sequence numbers carry on after a reopen: a newcomer queues behind its equals.
    await store.outbox.add(action('g', 70));
    await store.outbox.add(action('h', 40));
    expect(ids(store.outbox.next(10))).toEqual(['d', 'b', 'e', 'g', 'a', 'c', 'h', 'f']);
    await reopen();
    expect(ids(store.outbox.next(10))).toEqual(['d', 'b', 'e', 'g', 'a', 'c', 'h', 'f']);
  });

  test('returns each action as it was added', async () => {
    const a = {
      ...action('a', 50, { temp: 61.5, site: 'north', nested: { list: [1, 2] } }),
      group: 'cust-1',
    };
    await store.outbox.add(a);
    await reopen();
    expect(store.outbox.next(1)).toEqual([a]);
  });

  test('keeps an action decided again with the same id once, also across a reopen', async () => {
    await expect(store.outbox.add(action('x', 50))).resolves.toEqual({ status: 'queued', dropped: [] });
    await expect(store.outbox.add(action('x', 50))).resolves.toEqual({ status: 'duplicate', dropped: [] });
    await reopen();
    await expect(store.outbox.add(action('x', 50))).resolves.toEqual({ status: 'duplicate', dropped: [] });
    expect(store.outbox.size).toBe(1);
  });

  test('an action removed after its PUBACK is gone, also after a reopen', async () => {
    await store.outbox.add(action('a', 50));
    await store.outbox.add(action('b', 50));
    await store.outbox.remove('a');
    await store.outbox.remove('not-there');
    expect(ids(store.outbox.next(10))).toEqual(['b']);
    await reopen();
    expect(ids(store.outbox.next(10))).toEqual(['b']);
    expect(store.outbox.size).toBe(1);
  });

  test('hands out an action only once its write is on disk', async () => {
    const adding = store.outbox.add(action('a', 50));
    expect(store.outbox.next(10)).toEqual([]);
    await adding;
    expect(ids(store.outbox.next(10))).toEqual(['a']);
  });

  test('next can skip the actions already in flight', async () => {
    for (const id of ['a', 'b', 'c']) await store.outbox.add(action(id, 50));
    expect(ids(store.outbox.next(2, new Set(['a'])))).toEqual(['b', 'c']);
  });

  test('when full by count, the lowest-priority oldest action is dropped, and the result says which', async () => {
    await reopen({ maxCount: 3 });
    await store.outbox.add(action('p50', 50));
    await store.outbox.add(action('p60-old', 60));
    await store.outbox.add(action('p70', 70));

    const full = await store.outbox.add(action('p80', 80));
    expect(full.status).toBe('queued');
    expect(ids(full.dropped)).toEqual(['p50']);

    // Equal to the lowest queued: the queued one is older, so it goes.
    const equal = await store.outbox.add(action('p60-new', 60));
    expect(ids(equal.dropped)).toEqual(['p60-old']);

    // Lower than everything queued: the newcomer itself is dropped.
    const lowest = await store.outbox.add(action('p10', 10));
    expect(lowest.status).toBe('dropped');
    expect(ids(lowest.dropped)).toEqual(['p10']);

    expect(ids(store.outbox.next(10))).toEqual(['p80', 'p70', 'p60-new']);
    await reopen({ maxCount: 3 });
    expect(ids(store.outbox.next(10))).toEqual(['p80', 'p70', 'p60-new']);
  });

  test('when full by bytes, as many low-priority actions as needed make room', async () => {
    // Same-sized actions: ids of two characters, priorities below 24 (one CBOR byte), one scenario.
    const small = (id: string, p: number): Action => ({
      ...action(id, p, { pad: 'x'.repeat(100) }),
      scenario: 's',
    });
    await store.outbox.add(small('s0', 5));
    const smallBytes = store.outbox.bytes;
    await store.outbox.remove('s0');
    expect(store.outbox.bytes).toBe(0);

    await reopen({ maxBytes: smallBytes * 4 });
    for (const [id, p] of [
      ['s1', 1],
      ['s2', 2],
      ['s3', 3],
      ['s4', 4],
    ] as const)
      await store.outbox.add(small(id, p));
    expect(store.outbox.bytes).toBe(smallBytes * 4);

    const big = action('big', 50, { pad: 'x'.repeat(smallBytes * 2) });
    const result = await store.outbox.add(big);
    expect(result.status).toBe('queued');
    expect(ids(result.dropped)).toEqual(['s1', 's2', 's3']);
    expect(ids(store.outbox.next(10))).toEqual(['big', 's4']);
    expect(store.outbox.bytes).toBeLessThanOrEqual(smallBytes * 4);

    const huge = action('huge', 100, { pad: 'x'.repeat(smallBytes * 5) });
    await expect(store.outbox.add(huge)).resolves.toEqual({ status: 'dropped', dropped: [huge] });
    expect(ids(store.outbox.next(10))).toEqual(['big', 's4']);
  });

  test('size and bytes follow adds and removes and survive a reopen', async () => {
    await store.outbox.add(action('a', 1));
    await store.outbox.add(action('b', 2, { text: 'y'.repeat(500) }));
    const bytes = store.outbox.bytes;
    expect(store.outbox.size).toBe(2);
    expect(bytes).toBeGreaterThan(500);
    await reopen();
    expect([store.outbox.size, store.outbox.bytes]).toEqual([2, bytes]);
    await store.outbox.remove('b');
    expect(store.outbox.size).toBe(1);
    expect(store.outbox.bytes).toBeLessThan(bytes - 500);
  });

  test('concurrent adds are all durable and in order', async () => {
    const batch = Array.from({ length: 500 }, (_, i) => action(`a${i}`, i % 5));
    const results = await Promise.all(batch.map((a) => store.outbox.add(a)));
    expect(results.every((r) => r.status === 'queued')).toBe(true);
    await reopen();
    const expected = [...batch].sort((x, y) => y.priority - x.priority).map((a) => a.id);
    expect(ids(store.outbox.next(1_000))).toEqual(expected);
  });

  test('a failed write is reported as StoreIoError and leaves nothing half queued', async () => {
    await store.outbox.add(action('kept', 50));
    await store.db.close();
    const err = await store.outbox.add(action('lost', 90)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreIoError);
    expect(ids(store.outbox.next(10))).toEqual(['kept']);
    expect(store.outbox.size).toBe(1);
  });

  test('an eviction whose write fails is undone', async () => {
    await reopen({ maxCount: 2 });
    await store.outbox.add(action('low', 10));
    await store.outbox.add(action('mid', 50));
    await store.db.close();
    await expect(store.outbox.add(action('high', 90))).rejects.toBeInstanceOf(StoreIoError);
    expect(ids(store.outbox.next(10))).toEqual(['mid', 'low']);
  });

  test('known answers as add would, without a write: queued once on disk, delivered once acknowledged', async () => {
    expect(store.outbox.known('a')).toBeUndefined();
    const adding = store.outbox.add(action('a', 50));
    // Its write is under way: only add can answer (it waits for that write).
    expect(store.outbox.known('a')).toBeUndefined();
    await adding;
    expect(store.outbox.known('a')).toBe('queued');
    await store.outbox.add(action('b', 50));
    await store.outbox.markDelivered('b', 2_000);
    expect(store.outbox.known('b')).toBe('delivered');
    await store.outbox.add(action('c', 50));
    await store.outbox.remove('c');
    expect(store.outbox.known('c')).toBeUndefined();
    await reopen();
    expect([store.outbox.known('a'), store.outbox.known('b'), store.outbox.known('c')]).toEqual([
      'queued',
      'delivered',
      undefined,
    ]);
    expect((await store.outbox.add(action('a', 50))).status).toBe('duplicate');
    expect((await store.outbox.add(action('b', 50))).status).toBe('delivered');
  });

  test('known says nothing of an action whose write failed', async () => {
    await store.db.close();
    await expect(store.outbox.add(action('lost', 50))).rejects.toBeInstanceOf(StoreIoError);
    expect(store.outbox.known('lost')).toBeUndefined();
  });

  test('known agrees with add whatever the sequence of operations', async () => {
    type Op = { kind: 'add' | 'deliver' | 'remove'; id: number } | { kind: 'reopen' };
    const op = fc.oneof(
      fc.record({
        kind: fc.constantFrom('add' as const, 'deliver' as const, 'remove' as const),
        id: fc.nat(6),
      }),
      fc.record({ kind: fc.constant('reopen' as const) }),
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op as fc.Arbitrary<Op>, { maxLength: 30 }), async (ops) => {
        run += 1;
        const runDir = join(dir, `known-${run}`);
        const reopenRun = async (): Promise<void> => {
          await store.close();
          store = await openStore(runDir, { outbox: { maxCount: 4 } });
        };
        await reopenRun();
        for (const o of ops) {
          if (o.kind === 'reopen') {
            await reopenRun();
            continue;
          }
          const id = `k${o.id}`;
          const known = store.outbox.known(id);
          // Every write is awaited: what is queued is on disk.
          if (known !== 'delivered') expect(known === 'queued').toBe(store.outbox.has(id));
          if (o.kind === 'add') {
            const result = await store.outbox.add(action(id, o.id % 3));
            const expected = { queued: 'duplicate', delivered: 'delivered', dropped: 'dropped' } as const;
            if (known === undefined) expect(['queued', 'dropped']).toContain(result.status);
            else expect(result.status).toBe(expected[known]);
          } else if (o.kind === 'deliver') {
            await store.outbox.markDelivered(id, 1_000);
          } else {
            await store.outbox.remove(id);
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  test('behaves like a list sorted by priority, bounded, whatever the sequence of operations', async () => {
    type Op = { kind: 'add'; priority: number } | { kind: 'remove'; index: number } | { kind: 'reopen' };
    const op = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({ kind: fc.constant('add' as const), priority: fc.integer({ min: 0, max: 5 }) }),
      },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), index: fc.nat(20) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op as fc.Arbitrary<Op>, { maxLength: 40 }), async (ops) => {
        run += 1;
        const runDir = join(dir, `run-${run}`);
        const reopenRun = async (): Promise<void> => {
          await store.close();
          store = await openStore(runDir, { outbox: { maxCount: 5 } });
        };
        await reopenRun();
        // Inserted after its equals, dropped from the tail (lowest priority, oldest within it).
        const model = new OutboxModel(5);
        let n = 0;
        for (const o of ops) {
          if (o.kind === 'add') {
            const a = action(`r${run}-${n++}`, o.priority);
            const result = await store.outbox.add(a);
            expect(ids(result.dropped)).toEqual(ids(model.add(a)));
          } else if (o.kind === 'remove') {
            const victim = model.items[o.index % Math.max(model.items.length, 1)];
            if (victim === undefined) continue;
            await store.outbox.remove(victim.id);
            model.remove(victim);
          } else {
            await reopenRun();
          }
          expect(ids(store.outbox.next(100))).toEqual(ids(model.items));
        }
        await reopenRun();
        expect(ids(store.outbox.next(100))).toEqual(ids(model.items));
      }),
      { numRuns: 60 },
    );
  });
});
