import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import { policyFromObject } from '../../src/rules/policy.js';
import type { Action } from '../../src/shared/index.js';
import { openStore, type OutboxLimits, type Store } from '../../src/store/index.js';
import { Uplink, type UplinkOptions } from '../../src/upstream/uplink.js';
import { tempDir } from '../helpers/temp.js';

/**
 * The uplink against a real outbox (LevelDB in a temp dir) and aedes as the cloud. Its clock is a
 * variable the test moves, so what the rate and the ttl allow is decided by the test, not by how fast
 * the machine is.
 */
const quiet = pino({ level: 'silent' });
const HOUR = 3_600_000;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Cloud {
  broker: Broker;
  url: string;
  /** The actions received, in order, a batch's actions one by one. */
  actions: Action[];
  /** Actions per message, in order. */
  messages: number[];
}

async function startCloud(): Promise<Cloud> {
  const broker = await startLocalBroker();
  cleanups.push(() => broker.close());
  const cloud: Cloud = { broker, url: `mqtt://127.0.0.1:${broker.address.port}`, actions: [], messages: [] };
  await broker.subscribe('vigil/gw1/actions', (_topic, payload) => {
    const body = JSON.parse(payload.toString()) as Action | Action[];
    const list = Array.isArray(body) ? body : [body];
    cloud.actions.push(...list);
    cloud.messages.push(Array.isArray(body) ? list.length : 0);
  });
  return cloud;
}

async function openOutbox(outbox: Partial<OutboxLimits> = {}): Promise<Store> {
  const dir = await tempDir('vigil-uplink-');
  const store = await openStore(dir.path, { outbox });
  cleanups.push(() => dir.remove());
  cleanups.push(() => store.close());
  return store;
}

function action(id: string, priority: number, over: Partial<Action> = {}): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: `s-${priority}`,
    action: 'notify',
    actor: 'dev-1',
    priority,
    category: 'notice',
    decidedAt: 0,
    eventAt: 0,
    payload: {},
    ...over,
  };
}

function startUplink(store: Store, url: string, opts: Partial<UplinkOptions>): Uplink {
  const uplink = new Uplink({
    url,
    gatewayId: 'gw1',
    keepaliveMs: 30_000,
    reconnectMs: 100,
    inflight: 100,
    outbox: store.outbox,
    logger: quiet,
    ...opts,
  });
  cleanups.push(() => uplink.stop());
  uplink.connect();
  return uplink;
}

async function until(what: string, predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Gives the uplink time to send what it should not: a check that nothing more arrives. */
const settle = () => new Promise((r) => setTimeout(r, 150));

describe('the uplink applies the policy', () => {
  test('rate delays, never drops, and what it holds back drains highest priority first', async () => {
    const store = await openOutbox();
    for (let i = 0; i < 150; i++) await store.outbox.add(action(`low-${i}`, 10));
    const cloud = await startCloud();
    let now = 1_000_000;
    const uplink = startUplink(store, cloud.url, {
      policy: () => policyFromObject({ rate: '100/s' }),
      now: () => now,
    });

    // A full bucket: 100 at once, then nothing while the clock stands still.
    await until('the first 100', () => cloud.actions.length === 100);
    await settle();
    expect(cloud.actions).toHaveLength(100);
    await until('the outbox to forget the acknowledged ones', () => store.outbox.size === 50);

    // Higher priorities queued while the rate holds the rest back go before them.
    for (let i = 0; i < 5; i++) await store.outbox.add(action(`high-${i}`, 90));
    now += 50; // 5 tokens
    uplink.kick();
    await until('5 more', () => cloud.actions.length === 105);
    await settle();
    expect(cloud.actions.slice(100).map((a) => a.id)).toEqual([
      'high-0',
      'high-1',
      'high-2',
      'high-3',
      'high-4',
    ]);
    expect(cloud.actions).toHaveLength(105);

    now += 10_000;
    await until('everything', () => cloud.actions.length === 155);
    expect(cloud.actions.map((a) => a.id)).toEqual([
      ...Array.from({ length: 100 }, (_, i) => `low-${i}`),
      ...Array.from({ length: 5 }, (_, i) => `high-${i}`),
      ...Array.from({ length: 50 }, (_, i) => `low-${100 + i}`),
    ]);
    await until('an empty outbox', () => store.outbox.size === 0);
  });

  test('an action past its ttl is dropped and reported, not sent; the others go in order', async () => {
    const store = await openOutbox();
    const policy = policyFromObject({ ttl: { offer: '1h' } });
    const now = 10 * HOUR;
    await store.outbox.add(action('stale-offer', 50, { category: 'offer', decidedAt: now - HOUR }));
    await store.outbox.add(action('support', 40, { category: 'support', decidedAt: 0 }));
    await store.outbox.add(action('fresh-offer', 30, { category: 'offer', decidedAt: now - HOUR + 1 }));
    await store.outbox.add(action('stale-offer-2', 20, { category: 'offer', decidedAt: 0 }));
    const cloud = await startCloud();
    const expired: Array<[string, number]> = [];
    startUplink(store, cloud.url, {
      policy: () => policy,
      now: () => now,
      onExpired: (a, at) => expired.push([a.id, at]),
    });

    await until('the two fresh actions', () => cloud.actions.length === 2);
    await settle();
    expect(cloud.actions.map((a) => a.id)).toEqual(['support', 'fresh-offer']);
    expect(expired).toEqual([
      ['stale-offer', now],
      ['stale-offer-2', now],
    ]);
    await until('an empty outbox', () => store.outbox.size === 0);
  });

  test('expireQueued drops expired actions while the cloud is unreachable', async () => {
    const store = await openOutbox();
    const policy = policyFromObject({ ttl: { offer: '1h' } });
    for (let i = 0; i < 3; i++)
      await store.outbox.add(action(`offer-${i}`, 30, { category: 'offer', decidedAt: i }));
    await store.outbox.add(action('notice', 30, { decidedAt: 0 }));
    // Nothing listens there: a port that was free a moment ago.
    const gone = await startCloud();
    const url = gone.url;
    await gone.broker.close();
    const expired: string[] = [];
    let now = HOUR;
    const uplink = startUplink(store, url, {
      policy: () => policy,
      now: () => now,
      onExpired: (a) => expired.push(a.id),
    });

    expect(uplink.expireQueued()).toBe(1);
    expect(expired).toEqual(['offer-0']);
    now = HOUR + 2;
    expect(uplink.expireQueued()).toBe(2);
    expect(expired).toEqual(['offer-0', 'offer-1', 'offer-2']);
    expect(store.outbox.next(10).map((a) => a.id)).toEqual(['notice']);
    expect(uplink.connected).toBe(false);
  });

  test('an outbox many times its read-ahead window drains whole and in drain order, batched', async () => {
    const store = await openOutbox({ readAhead: 4 });
    const added: Action[] = [];
    for (let i = 0; i < 60; i++) {
      const a = action(`a-${i}`, [10, 50, 90][i % 3] as number, { payload: { n: i, site: 'north' } });
      added.push(a);
      await store.outbox.add(a);
    }
    // Those in memory leave: the drain starts with nothing to hand out until the outbox reads some back.
    const gone = new Set<string>();
    for (const q of store.outbox.waiting()) if (q.action !== undefined) gone.add(q.id);
    for (const id of gone) await store.outbox.remove(id);
    expect(store.outbox.loadedCount).toBe(0);
    const cloud = await startCloud();
    startUplink(store, cloud.url, { inflight: 3, batch: { max: 2, withinMs: 0 } });
    await until('all the others', () => cloud.actions.length === 60 - gone.size);
    const order = added.filter((a) => !gone.has(a.id)).sort((x, y) => y.priority - x.priority);
    expect(cloud.actions).toEqual(order);
    await until('an empty outbox', () => store.outbox.size === 0);
  });

  test('expireQueued reports whole the expired actions it reads back from disk', async () => {
    const store = await openOutbox({ readAhead: 2 });
    const policy = policyFromObject({ ttl: { offer: '1h' } });
    for (let i = 0; i < 6; i++) await store.outbox.add(action(`notice-${i}`, 60));
    const offers = Array.from({ length: 4 }, (_, i) =>
      action(`offer-${i}`, 10, { category: 'offer', decidedAt: i, payload: { n: i } }),
    );
    for (const a of offers) await store.outbox.add(a);
    expect(
      store.outbox
        .waiting()
        .filter((q) => q.action !== undefined)
        .map((q) => q.id),
    ).not.toContain('offer-0');
    const gone = await startCloud();
    await gone.broker.close();
    const expired: Action[] = [];
    const uplink = startUplink(store, gone.url, {
      policy: () => policy,
      now: () => HOUR + 2,
      onExpired: (a) => expired.push(a),
    });

    expect(uplink.expireQueued()).toBe(3);
    await until('three reported', () => expired.length === 3);
    expect(expired).toEqual(offers.slice(0, 3));
    expect(store.outbox.size).toBe(7);
  });

  test('batching sends JSON arrays of up to max actions, in drain order, and a batch not full after within', async () => {
    const store = await openOutbox();
    for (let i = 0; i < 25; i++) await store.outbox.add(action(`a-${i}`, i < 12 ? 80 : 20));
    const cloud = await startCloud();
    let now = 1_000_000;
    const uplink = startUplink(store, cloud.url, { batch: { max: 10, withinMs: 50 }, now: () => now });

    // Two full batches at once; the last 5 wait for more, up to `within`.
    await until('two batches', () => cloud.messages.length === 2);
    await settle();
    expect(cloud.messages).toEqual([10, 10]);
    now += 50;
    await until('the batch that was not full', () => cloud.messages.length === 3);
    expect(cloud.messages).toEqual([10, 10, 5]);
    expect(cloud.actions.map((a) => a.id)).toEqual(Array.from({ length: 25 }, (_, i) => `a-${i}`));
    await until('an empty outbox', () => store.outbox.size === 0);

    // Actions that come one by one within `within` travel together.
    for (let i = 0; i < 3; i++) {
      await store.outbox.add(action(`late-${i}`, 50));
      uplink.kick();
    }
    await settle();
    expect(cloud.messages).toHaveLength(3);
    now += 50;
    await until('the late batch', () => cloud.messages.length === 4);
    expect(cloud.messages[3]).toBe(3);
    expect(cloud.actions.slice(25).map((a) => a.id)).toEqual(['late-0', 'late-1', 'late-2']);
  });

  test('with batching, the rate counts actions, and a full batch waits for tokens for all of it', async () => {
    const store = await openOutbox();
    for (let i = 0; i < 50; i++) await store.outbox.add(action(`a-${i}`, 50));
    const cloud = await startCloud();
    let now = 1_000_000;
    startUplink(store, cloud.url, {
      policy: () => policyFromObject({ rate: '20/s' }),
      batch: { max: 10, withinMs: 1_000 },
      now: () => now,
    });

    await until('the burst', () => cloud.actions.length === 20);
    await settle();
    expect(cloud.messages).toEqual([10, 10]);
    now += 250; // 5 tokens: half a batch, and it may still wait
    await settle();
    expect(cloud.messages).toEqual([10, 10]);
    now += 250; // 10 tokens
    await until('a third batch', () => cloud.messages.length === 3);
    expect(cloud.messages).toEqual([10, 10, 10]);
    now += 5_000;
    await until('everything', () => cloud.actions.length === 50);
    expect(cloud.messages).toEqual([10, 10, 10, 10, 10]);
    expect(cloud.actions.map((a) => a.id)).toEqual(Array.from({ length: 50 }, (_, i) => `a-${i}`));
  });
});
