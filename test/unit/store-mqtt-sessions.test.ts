import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import {
  MqttSessions,
  openStore,
  type MqttSessionsOptions,
  type SessionDrop,
  type Store,
} from '../../src/store/index.js';

let dir: string;
let store: Store;
let sessions: MqttSessions;
let nowMs = 1_000_000;
let drops: SessionDrop[];
const broker = { id: 'broker-1' };

async function open(opts: MqttSessionsOptions = {}): Promise<MqttSessions> {
  sessions = await MqttSessions.open(store.db, {
    now: () => nowMs,
    onDrop: (drop) => drops.push(drop),
    ...opts,
  });
  await sessions.setup(broker);
  return sessions;
}

/** Stops as the gateway does (sessions, then the store), and opens both again on the same directory. */
async function restart(opts: MqttSessionsOptions = {}): Promise<MqttSessions> {
  await sessions.close();
  await store.close();
  store = await openStore(dir);
  return open(opts);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-mqtt-sessions-'));
  store = await openStore(dir);
  drops = [];
  nowMs = 1_000_000;
  await open();
});

afterEach(async () => {
  await sessions.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function all<T>(stream: Readable): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stream) out.push(item as T);
  return out;
}

let counter = 0;
function publish(topic: string, payload: string, qos = 1) {
  counter += 1;
  return {
    cmd: 'publish',
    topic,
    payload: Buffer.from(payload),
    qos,
    retain: false,
    dup: false,
    brokerId: broker.id,
    brokerCounter: counter,
  };
}

const payloads = (packets: Array<{ payload?: unknown }>): string[] => packets.map((p) => String(p.payload));

describe('MqttSessions across a restart', () => {
  test('subscriptions, queued and in-flight messages, QoS 2 receipts, wills and retained messages come back', async () => {
    const client = { id: 'dev-1' };
    await sessions.addSubscriptions(client, [
      { topic: 'site/+/alerts', qos: 1 },
      { topic: 'site/status', qos: 0 },
    ]);
    const first = publish('site/a/alerts', 'one');
    await sessions.outgoingEnqueueCombi([{ clientId: 'dev-1' }], first);
    await sessions.outgoingEnqueueCombi([{ clientId: 'dev-1' }], publish('site/b/alerts', 'two'));
    // The first is sent (packet identifier 7) and not acknowledged; a QoS 2 publish from the client awaits PUBREL.
    await sessions.outgoingUpdate(client, { ...first, messageId: 7 });
    await sessions.incomingStorePacket(client, { ...publish('up/x', 'q2', 2), messageId: 12 });
    await sessions.putWill(client, {
      cmd: 'publish',
      topic: 'devices/dev-1/status',
      payload: Buffer.from('gone'),
    });
    await sessions.storeRetained({ ...publish('site/status', 'open', 0), retain: true });

    await restart();

    expect(await sessions.subscriptionsByClient(client)).toMatchObject([
      { topic: 'site/+/alerts', qos: 1 },
      { topic: 'site/status', qos: 0 },
    ]);
    expect(await sessions.subscriptionsByTopic('site/c/alerts')).toMatchObject([
      { clientId: 'dev-1', qos: 1 },
    ]);
    const queued = await all<{ payload: Buffer; messageId?: number }>(sessions.outgoingStream(client));
    expect(payloads(queued)).toEqual(['one', 'two']);
    expect(queued[0]?.messageId).toBe(7);
    expect(String((await sessions.incomingGetPacket(client, { messageId: 12 })).payload)).toBe('q2');
    // The will of the previous run's broker is one to publish: that broker is gone.
    const wills = await all<{ clientId: string; topic: string }>(
      sessions.streamWill({ [broker.id + '-new']: 1 }),
    );
    expect(wills).toMatchObject([{ clientId: 'dev-1', topic: 'devices/dev-1/status' }]);
    const retained = await all<{ payload: Buffer }>(sessions.createRetainedStreamCombi(['site/#']));
    expect(payloads(retained)).toEqual(['open']);
  });

  test('what was acknowledged, unsubscribed, released or cleared does not come back', async () => {
    const client = { id: 'dev-1' };
    await sessions.addSubscriptions(client, [
      { topic: 'a', qos: 1 },
      { topic: 'b', qos: 1 },
    ]);
    await sessions.removeSubscriptions(client, ['a']);
    const sent = publish('b', 'acked');
    await sessions.outgoingEnqueueCombi([{ clientId: 'dev-1' }], sent);
    await sessions.outgoingUpdate(client, { ...sent, messageId: 3 });
    await sessions.outgoingClearMessageId(client, { messageId: 3 });
    // A QoS 2 message whose PUBREC came: a PUBREL is what is left to send.
    const second = publish('b', 'qos2', 2);
    await sessions.outgoingEnqueueCombi([{ clientId: 'dev-1' }], second);
    await sessions.outgoingUpdate(client, { ...second, messageId: 4 });
    await sessions.outgoingUpdate(client, { cmd: 'pubrel', messageId: 4 });
    await sessions.incomingStorePacket(client, { ...publish('up', 'x', 2), messageId: 9 });
    await sessions.incomingDelPacket(client, { messageId: 9 });
    await sessions.storeRetained({ ...publish('r/1', 'kept', 0), retain: true });
    await sessions.storeRetained({ ...publish('r/2', 'cleared', 0), retain: true });
    await sessions.storeRetained({ ...publish('r/2', '', 0), retain: true });
    await sessions.putWill(client, { cmd: 'publish', topic: 'w', payload: Buffer.from('w') });
    await sessions.delWill(client);

    await restart();

    expect(await sessions.subscriptionsByClient(client)).toMatchObject([{ topic: 'b', qos: 1 }]);
    expect(await all(sessions.outgoingStream(client))).toEqual([{ cmd: 'pubrel', messageId: 4 }]);
    await expect(sessions.incomingGetPacket(client, { messageId: 9 })).rejects.toThrow();
    expect(payloads(await all(sessions.createRetainedStreamCombi(['r/#'])))).toEqual(['kept']);
    expect(await all(sessions.streamWill({}))).toEqual([]);
    expect(sessions.stats()).toMatchObject({ queued: 1, retained: 1 });
  });

  test('a clean session discards the subscriptions and QoS 2 receipts of the session before', async () => {
    const client = { id: 'dev-1' };
    await sessions.addSubscriptions(client, [{ topic: 'a', qos: 1 }]);
    await sessions.incomingStorePacket(client, { ...publish('up', 'x', 2), messageId: 5 });
    sessions.sessionConnected('dev-1', false);
    // Connects again with a clean session: aedes cleans subscriptions and receipts, then says so.
    await sessions.cleanSubscriptions(client);
    await sessions.cleanIncoming(client);
    sessions.sessionConnected('dev-1', true);

    await restart();

    expect(await sessions.subscriptionsByClient(client)).toEqual([]);
    await expect(sessions.incomingGetPacket(client, { messageId: 5 })).rejects.toThrow();
    expect(sessions.stats().sessions).toBe(0);
  });
});

describe('bounds', () => {
  test('a client is held at most maxQueued messages: the ones past it are not kept, and reported', async () => {
    await restart({ limits: { maxQueued: 2 } });
    for (const text of ['1', '2', '3']) {
      await sessions.outgoingEnqueueCombi([{ clientId: 'dev-1' }, { clientId: 'dev-2' }], publish('t', text));
    }
    expect(payloads(await all(sessions.outgoingStream({ id: 'dev-1' })))).toEqual(['1', '2']);
    expect(drops).toEqual([
      { what: 'queued', limit: 'max-queued', clientId: 'dev-1', topic: 't' },
      { what: 'queued', limit: 'max-queued', clientId: 'dev-2', topic: 't' },
    ]);
    // An acknowledgement makes room.
    const [held] = await all<{ brokerCounter: number }>(sessions.outgoingStream({ id: 'dev-1' }));
    await sessions.outgoingUpdate(
      { id: 'dev-1' },
      { ...publish('t', '1'), brokerCounter: held?.brokerCounter, messageId: 1 },
    );
    await sessions.outgoingClearMessageId({ id: 'dev-1' }, { messageId: 1 });
    await sessions.outgoingEnqueueCombi([{ clientId: 'dev-1' }], publish('t', '4'));
    expect(payloads(await all(sessions.outgoingStream({ id: 'dev-1' })))).toEqual(['2', '4']);
  });

  test('and at most maxQueuedBytes', async () => {
    await restart({ limits: { maxQueuedBytes: 500 } });
    await sessions.outgoingEnqueueCombi([{ clientId: 'dev-1' }], publish('t', 'x'.repeat(200)));
    await sessions.outgoingEnqueueCombi([{ clientId: 'dev-1' }], publish('t', 'y'.repeat(200)));
    await sessions.outgoingEnqueueCombi([{ clientId: 'dev-1' }], publish('t', 'z'));
    expect(payloads(await all(sessions.outgoingStream({ id: 'dev-1' }))).map((p) => p[0])).toEqual([
      'x',
      'z',
    ]);
    expect(drops).toEqual([{ what: 'queued', limit: 'max-queued-bytes', clientId: 'dev-1', topic: 't' }]);
  });

  test('retained messages: per device, in count and in bytes; a replacement always fits its own place', async () => {
    await restart({ limits: { retainedPerDevice: 2, retainedCount: 3, retainedBytes: 1_000 } });
    const retain = (topic: string, text: string) =>
      sessions.storeRetained({ ...publish(topic, text, 0), retain: true });
    await retain('devices/d1/a', '1');
    await retain('devices/d1/b', '1');
    await retain('devices/d1/c', '1'); // over d1's two
    await retain('devices/d1/a', '2'); // a replacement
    await retain('devices/d2/a', '1');
    await retain('other', '1'); // over three in all
    await retain('devices/d2/a', 'x'.repeat(1_000)); // a replacement, over the bytes
    expect(drops.map((d) => [d.topic, d.limit])).toEqual([
      ['devices/d1/c', 'per-device'],
      ['other', 'max-count'],
      ['devices/d2/a', 'max-bytes'],
    ]);
    await retain('devices/d1/b', ''); // cleared: d1 has room again
    await retain('devices/d1/c', '1');
    const kept = await all<{ topic: string; payload: Buffer }>(sessions.createRetainedStreamCombi(['#']));
    expect(kept.map((p) => `${p.topic}=${String(p.payload)}`).sort()).toEqual([
      'devices/d1/a=2',
      'devices/d1/c=1',
      'devices/d2/a=1',
    ]);
    await restart({ limits: { retainedPerDevice: 2, retainedCount: 3, retainedBytes: 1_000 } });
    // The bounds count what was loaded.
    await retain('devices/d3/a', '1');
    expect(drops.at(-1)).toMatchObject({ topic: 'devices/d3/a', limit: 'max-count' });
  });
});

describe('expiry', () => {
  const expiryMs = 60_000;
  const client = { id: 'dev-1' };

  async function sessionWithMessage(): Promise<void> {
    await restart({ limits: { expiryMs } });
    sessions.sessionConnected('dev-1', false);
    await sessions.addSubscriptions(client, [{ topic: 't', qos: 1 }]);
    await sessions.outgoingEnqueueCombi([{ clientId: 'dev-1' }], publish('t', 'waiting'));
  }

  test('a session whose client stays away expiryMs is discarded, and stays so after a restart', async () => {
    await sessionWithMessage();
    sessions.sessionDisconnected('dev-1', false);
    nowMs += expiryMs - 1;
    expect(await sessions.expire()).toBe(0);
    nowMs += 1;
    expect(await sessions.expire()).toBe(1);
    expect(await sessions.subscriptionsByClient(client)).toEqual([]);
    expect(await all(sessions.outgoingStream(client))).toEqual([]);
    await restart({ limits: { expiryMs } });
    expect(await sessions.subscriptionsByClient(client)).toEqual([]);
    expect(sessions.stats()).toMatchObject({ sessions: 0, queued: 0 });
  });

  test('a session does not expire while its client is connected; time away counts from the disconnect', async () => {
    await sessionWithMessage();
    nowMs += 10 * expiryMs;
    expect(await sessions.expire()).toBe(0);
    sessions.sessionDisconnected('dev-1', false);
    nowMs += expiryMs / 2;
    expect(await sessions.expire()).toBe(0);
    // The gateway restarts meanwhile: the time away goes on counting.
    await restart({ limits: { expiryMs } });
    expect(await sessions.subscriptionsHeld()).toMatchObject([['dev-1', [{ topic: 't' }]]]);
    nowMs += expiryMs / 2;
    expect(await sessions.expire()).toBe(1);
  });

  test('a client that comes back as its session is due keeps it: aedes asks for its subscriptions first', async () => {
    await sessionWithMessage();
    sessions.sessionDisconnected('dev-1', false);
    nowMs += expiryMs;
    // CONNECT: the subscriptions, then the will and the queue; only after the CONNACK is the client connected.
    expect(await sessions.subscriptionsByClient(client)).toHaveLength(1);
    expect(await sessions.expire()).toBe(0);
    expect(await all(sessions.outgoingStream(client))).toHaveLength(1);
    sessions.sessionConnected('dev-1', false);
    // Away again: its time away counts from now.
    sessions.sessionDisconnected('dev-1', false);
    nowMs += expiryMs;
    expect(await sessions.expire()).toBe(1);
  });

  test('a session that expired while the gateway was down is gone at start', async () => {
    await sessionWithMessage();
    sessions.sessionDisconnected('dev-1', false);
    await sessions.close();
    nowMs += expiryMs;
    await restart({ limits: { expiryMs } });
    expect(await sessions.subscriptionsByClient(client)).toEqual([]);
  });
});
