import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { policyFromObject } from '../../src/rules/policy.js';
import type { Action } from '../../src/shared/index.js';
import { openStore, type OutboxLimits, type Store } from '../../src/store/index.js';
import type { ReopenableLevel } from '../../src/store/reopenable-level.js';
import { queuedExpired } from '../../src/upstream/index.js';
import { OutboxModel } from '../helpers/outbox-model.js';

/**
 * The outbox keeps only a window of actions whole in memory (`readAhead`) and reads the rest back from LevelDB as
 * the drain nears them: a real LevelDB in a temp dir, with a window of a few actions.
 */
let dir: string;
let store: Store;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-outbox-read-ahead-'));
  store = await openStore(dir, { outbox: { readAhead: 4 } });
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function reopen(outbox: Partial<OutboxLimits> = {}): Promise<void> {
  await store.close();
  store = await openStore(dir, { outbox: { readAhead: 4, ...outbox } });
}

function action(id: string, priority: number, over: Partial<Action> = {}): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: `s-${priority}`,
    action: 'notify',
    actor: `dev-${id}`,
    priority,
    category: 'notice',
    decidedAt: 1_000,
    eventAt: 990,
    payload: { n: id, site: 'north', reading: { temp: 61.5 } },
    ...over,
  };
}

/** `count` actions of three priorities, and the order the outbox must drain them in. */
async function addMixed(count: number): Promise<Action[]> {
  const added: Action[] = [];
  for (let i = 0; i < count; i++) {
    const a = action(`a${i}`, [10, 50, 90][i % 3] as number);
    added.push(a);
    await store.outbox.add(a);
  }
  return [...added].sort((x, y) => y.priority - x.priority);
}

/**
 * Drains as the uplink does: up to `n` at a time that are not in flight, acknowledged later; when none can be had,
 * waits for the read-ahead. Returns every action handed out, in order.
 */
async function drain(n: number): Promise<Action[]> {
  const sent: Action[] = [];
  const inFlight = new Set<string>();
  while (store.outbox.size > 0) {
    const next = store.outbox.next(n, inFlight);
    for (const a of next) inFlight.add(a.id);
    sent.push(...next);
    if (next.length === 0) {
      const { loading } = store.outbox;
      if (loading === undefined) throw new Error(`${store.outbox.size} queued and none handed out`);
      await loading;
      continue;
    }
    // The acknowledgements of the previous round come in while these are in flight.
    const acked = [...inFlight].slice(0, Math.max(0, inFlight.size - n));
    await Promise.all(acked.map((id) => store.outbox.markDelivered(id, 2_000)));
    for (const id of acked) inFlight.delete(id);
    if (store.outbox.size === inFlight.size) {
      await Promise.all([...inFlight].map((id) => store.outbox.markDelivered(id, 2_000)));
      inFlight.clear();
    }
  }
  return sent;
}

/** Every queued action, whole, in drain order, as `next` hands them out once read back; nothing is removed. */
async function listed(): Promise<Action[]> {
  const seen = new Set<string>();
  const out: Action[] = [];
  for (;;) {
    for (const a of store.outbox.next(100, seen)) {
      seen.add(a.id);
      out.push(a);
    }
    if (out.length >= store.outbox.size) return out;
    const { loading } = store.outbox;
    if (loading === undefined) throw new Error(`${store.outbox.size} queued and ${out.length} handed out`);
    await loading;
  }
}

async function until(what: string, predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('Outbox read-ahead', () => {
  test('drains many more actions than its window, whole and in drain order, holding about the window', async () => {
    const order = await addMixed(60);
    // Written and settled: past the window, only what memory needs to order them.
    expect(store.outbox.loadedCount).toBeLessThanOrEqual(8);
    expect(await drain(3)).toEqual(order);
    expect(store.outbox.size).toBe(0);
    await reopen();
    expect(store.outbox.size).toBe(0);
  });

  test('after a reopen, the window is loaded and the rest is read back as the drain goes', async () => {
    const order = await addMixed(40);
    await reopen();
    expect(store.outbox.loadedCount).toBe(4);
    expect(store.outbox.next(10)).toEqual(order.slice(0, 4));
    expect(await drain(5)).toEqual(order);
  });

  test('an action of a higher priority arriving during a backlog goes first, whole', async () => {
    const order = await addMixed(30);
    const first = store.outbox.next(2);
    expect(first).toEqual(order.slice(0, 2));
    const urgent = action('urgent', 100);
    await store.outbox.add(urgent);
    expect(store.outbox.next(1)).toEqual([urgent]);
    expect(await drain(4)).toEqual([urgent, ...order]);
  });

  test('an action evicted while not in memory is read back and reported whole', async () => {
    await reopen({ maxCount: 12 });
    const low = Array.from({ length: 6 }, (_, i) => action(`low-${i}`, 5));
    for (const a of low) await store.outbox.add(a);
    for (let i = 0; i < 6; i++) await store.outbox.add(action(`high-${i}`, 80));
    await reopen({ maxCount: 12 });
    // The window holds the first four in drain order, high ones: the low ones are on disk only.
    expect(store.outbox.waiting().find((q) => q.id === 'low-0')?.action).toBeUndefined();

    const result = await store.outbox.add(action('newcomer', 80));
    expect(result).toEqual({ status: 'queued', dropped: [low[0]] });
    const two = await Promise.all([store.outbox.add(action('n2', 80)), store.outbox.add(action('n3', 80))]);
    expect(two.flatMap((r) => r.dropped)).toEqual([low[1], low[2]]);
    await reopen({ maxCount: 12 });
    expect(store.outbox.has('low-0')).toBe(false);
    expect((await drain(4)).map((a) => a.id)).toEqual([
      ...Array.from({ length: 6 }, (_, i) => `high-${i}`),
      'newcomer',
      'n2',
      'n3',
      'low-3',
      'low-4',
      'low-5',
    ]);
  });

  test('an action expired while not in memory is found from what memory keeps, and removed whole', async () => {
    const policy = policyFromObject({ ttl: { offer: '1h' } });
    const offers = Array.from({ length: 8 }, (_, i) =>
      action(`offer-${i}`, 10, { category: 'offer', decidedAt: i, clockOffsetMs: -5 }),
    );
    for (let i = 0; i < 6; i++) await store.outbox.add(action(`notice-${i}`, 60, { decidedAt: 0 }));
    for (const a of offers) await store.outbox.add(a);

    // Decided at i, 5 ms behind on gateway time: at 3,600,007 those decided at 0, 1 and 2 waited an hour.
    const expired = queuedExpired(store.outbox, policy, 3_600_007);
    expect(expired.map((q) => q.id)).toEqual(['offer-0', 'offer-1', 'offer-2']);
    expect(expired.map((q) => q.action)).toEqual([undefined, undefined, undefined]);
    const removed = await Promise.all(expired.map((q) => store.outbox.remove(q.id)));
    expect(removed).toEqual(offers.slice(0, 3));
    expect(store.outbox.size).toBe(11);
    await reopen();
    expect(queuedExpired(store.outbox, policy, 3_600_007)).toEqual([]);
    expect((await drain(4)).map((a) => a.id).slice(-5)).toEqual(offers.slice(3).map((a) => a.id));
  });

  test('a read-ahead that fails is tried again until LevelDB reads, and nothing is lost', async () => {
    const order = await addMixed(20);
    const db = store.db as ReopenableLevel;
    const handed = store.outbox.next(20);
    expect(handed.length).toBeLessThan(20);
    expect(handed).toEqual(order.slice(0, handed.length));
    await store.outbox.loading;

    // LevelDB closed, as while a reopen after a failed write has not succeeded: reads fail.
    await db.close();
    const inFlight = new Set(handed.map((a) => a.id));
    handed.push(...store.outbox.next(20, inFlight));
    expect(store.outbox.loading).toBeDefined();
    await until('failed reads', () => store.outbox.readErrors >= 2);
    expect(store.outbox.size).toBe(20);
    expect(handed.length).toBeLessThan(20);

    await db.reopen();
    await store.outbox.loading;
    await Promise.all(handed.map((a) => store.outbox.markDelivered(a.id, 2_000)));
    handed.push(...(await drain(3)));
    expect(handed).toEqual(order);
    await reopen();
    expect(store.outbox.size).toBe(0);
  });

  test('behaves like a list sorted by priority, bounded, whatever the operations, with a window of two', async () => {
    type Op =
      { kind: 'add'; priority: number } | { kind: 'remove' | 'deliver'; index: number } | { kind: 'reopen' };
    const op = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({ kind: fc.constant('add' as const), priority: fc.integer({ min: 0, max: 4 }) }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constantFrom('remove' as const, 'deliver' as const),
          index: fc.nat(12),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op as fc.Arbitrary<Op>, { maxLength: 40 }), async (ops) => {
        run += 1;
        const runDir = join(dir, `run-${run}`);
        const reopenRun = async (): Promise<void> => {
          await store.close();
          store = await openStore(runDir, { outbox: { maxCount: 8, readAhead: 2 } });
        };
        await reopenRun();
        const model = new OutboxModel(8);
        let n = 0;
        for (const o of ops) {
          if (o.kind === 'add') {
            const a = action(`r${run}-${n++}`, o.priority);
            const result = await store.outbox.add(a);
            // Whole, whether it was in memory or read back.
            expect(result.dropped).toEqual(model.add(a));
          } else if (o.kind === 'remove' || o.kind === 'deliver') {
            const victim = model.items[o.index % Math.max(model.items.length, 1)];
            if (victim === undefined) continue;
            if (o.kind === 'remove') expect(await store.outbox.remove(victim.id)).toEqual(victim);
            else await store.outbox.markDelivered(victim.id, 2_000);
            model.remove(victim);
          } else {
            await reopenRun();
          }
          expect(await listed()).toEqual(model.items);
          expect(store.outbox.loadedCount).toBeLessThanOrEqual(Math.max(4, model.items.length));
        }
        await reopenRun();
        expect(await listed()).toEqual(model.items);
      }),
      { numRuns: 50 },
    );
  });
});
