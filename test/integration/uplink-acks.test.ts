import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { Aedes, type Client } from 'aedes';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { openStore } from '../../src/store/index.js';
import { Uplink, type CloudMessage } from '../../src/upstream/uplink.js';
import { waitUntil } from '../e2e/crash-harness.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A cloud broker (aedes on loopback) that tells which of its QoS 1 deliveries were acknowledged. */
async function cloudBroker() {
  const aedes = await Aedes.createBroker();
  const acked: string[] = [];
  const clients = new Map<string, Client>();
  aedes.on('ack', (packet) => {
    if (packet && 'payload' in packet) acked.push(Buffer.from(packet.payload).toString());
  });
  aedes.on('client', (client) => void clients.set(client.id, client));
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await closed;
  });
  // The gateway's actions, as the cloud takes them (before its PUBACK).
  const actions: string[] = [];
  aedes.on('publish', (packet, client) => {
    if (client && packet.topic === 'vigil/gw1/actions') actions.push(Buffer.from(packet.payload).toString());
  });
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    acked,
    actions,
    publish: (topic: string, payload: string) =>
      new Promise<void>((resolve, reject) =>
        aedes.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false },
          (err) => (err ? reject(err) : resolve()),
        ),
      ),
    /** Cuts the connection of a client, as a network failure would. */
    cut: (clientId: string) => clients.get(clientId)?.conn.destroy(),
  };
}

interface Pending {
  message: CloudMessage;
  resolve: () => void;
  reject: (err: Error) => void;
}

describe('messages from the cloud are acknowledged once handled', () => {
  test('the PUBACK waits for the handler; a refusal is not acknowledged and comes again on the next connection', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const store = await openStore(join(tmp.path, 'store'));
    cleanups.push(() => store.close());
    const cloud = await cloudBroker();
    const pending: Pending[] = [];
    let connected = false;
    const uplink = new Uplink({
      url: cloud.url,
      gatewayId: 'gw1',
      keepaliveMs: 30_000,
      reconnectMs: 50,
      inflight: 10,
      outbox: store.outbox,
      logger: pino({ level: 'silent' }),
      onConnectionChange: (up) => (connected = up),
      onMessage: (message) =>
        new Promise<void>((resolve, reject) => pending.push({ message, resolve, reject })),
    });
    cleanups.push(() => uplink.stop());
    uplink.connect();
    await waitUntil(() => connected, 5_000, 'the uplink subscribed');

    await cloud.publish('vigil/gw1/events', 'first');
    await waitUntil(() => pending.length === 1, 5_000, 'the first message handed over');
    await new Promise((r) => setTimeout(r, 200));
    expect(cloud.acked).toEqual([]);
    pending[0]?.resolve();
    await waitUntil(() => cloud.acked.length === 1, 5_000, 'the first PUBACK');
    expect(cloud.acked).toEqual(['first']);

    await cloud.publish('vigil/gw1/events', 'second');
    await waitUntil(() => pending.length === 2, 5_000, 'the second message handed over');
    pending[1]?.reject(new Error('not recorded'));
    await new Promise((r) => setTimeout(r, 200));
    expect(cloud.acked).toEqual(['first']);

    // The broker sends it again on the next connection of the same session, with the same packet id.
    cloud.cut('vigil-gw1');
    await waitUntil(() => pending.length === 3, 5_000, 'the second message delivered again');
    expect(pending[2]?.message).toMatchObject({
      topic: 'vigil/gw1/events',
      messageId: pending[1]?.message.messageId,
    });
    expect(pending[2]?.message.payload.toString()).toBe('second');
    expect(pending[2]?.message.connection).toBeGreaterThan(pending[1]?.message.connection ?? 0);
    pending[2]?.resolve();
    await waitUntil(() => cloud.acked.length === 2, 5_000, 'the second PUBACK');
    expect(cloud.acked).toEqual(['first', 'second']);
  });

  test('the PUBACK of an action is read while a message from the cloud is still being handled; messages stay one at a time, acknowledged in order', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const store = await openStore(join(tmp.path, 'store'));
    cleanups.push(() => store.close());
    const cloud = await cloudBroker();
    const pending: Pending[] = [];
    let connected = false;
    const uplink = new Uplink({
      url: cloud.url,
      gatewayId: 'gw1',
      keepaliveMs: 30_000,
      reconnectMs: 50,
      inflight: 10,
      outbox: store.outbox,
      logger: pino({ level: 'silent' }),
      onConnectionChange: (up) => (connected = up),
      onMessage: (message) =>
        new Promise<void>((resolve, reject) => pending.push({ message, resolve, reject })),
    });
    cleanups.push(() => uplink.stop());
    uplink.connect();
    await waitUntil(() => connected, 5_000, 'the uplink subscribed');

    // The first event is being recorded (its handler has not settled) when the next one comes, and an action
    // goes up: the cloud's PUBACK of the action is not held behind the event.
    await cloud.publish('vigil/gw1/events', 'first');
    await waitUntil(() => pending.length === 1, 5_000, 'the first message handed over');
    await cloud.publish('vigil/gw1/events', 'second');
    await store.outbox.add(action('a-1'));
    uplink.kick();
    await waitUntil(() => cloud.actions.length === 1, 5_000, 'the action at the cloud');
    await waitUntil(() => store.outbox.size === 0, 5_000, 'the action acknowledged and out of the outbox');
    expect(store.outbox.deliveredCount).toBe(1);

    // Still one message at a time: the second is handed over once the first is done, and acknowledged after it.
    expect(pending).toHaveLength(1);
    expect(cloud.acked).toEqual([]);
    pending[0]?.resolve();
    await waitUntil(() => pending.length === 2, 5_000, 'the second message handed over');
    await waitUntil(() => cloud.acked.length === 1, 5_000, 'the first PUBACK');
    pending[1]?.resolve();
    await waitUntil(() => cloud.acked.length === 2, 5_000, 'the second PUBACK');
    expect(cloud.acked).toEqual(['first', 'second']);
  });
});

function action(id: string): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: 'order',
    action: 'confirm-order',
    actor: 'cust-1',
    priority: 50,
    category: 'maintenance',
    decidedAt: 0,
    eventAt: 0,
    payload: {},
  };
}
