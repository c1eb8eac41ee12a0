import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { Aedes, type Client } from 'aedes';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { Uplink } from '../../src/upstream/uplink.js';
import { waitUntil } from '../e2e/crash-harness.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Longer than any bound `stop` has, far shorter than the test timeout: a stop past it hangs. */
const STOP_WITHIN_MS = 8_000;

/** aedes on loopback that can cut a client's connection and, on request, leave actions unacknowledged. */
async function cloudBroker(opts: { ackActions: boolean; ackAfterMs?: number }) {
  const aedes = await Aedes.createBroker({
    authorizePublish: (_client, packet, done) => {
      if (packet.topic === 'vigil/gw1/actions') {
        // Never answered: no PUBACK, the action stays in flight.
        if (!opts.ackActions) return;
        if (opts.ackAfterMs !== undefined) return void setTimeout(() => done(null), opts.ackAfterMs);
      }
      done(null);
    },
  });
  const clients = new Map<string, Client>();
  aedes.on('client', (client) => void clients.set(client.id, client));
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await closed;
  };
  cleanups.push(close);
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close,
    /** Cuts the connection of a client, as a network failure would; the client notices later. */
    cut: (clientId: string) => clients.get(clientId)?.conn.destroy(),
  };
}

async function openOutbox(): Promise<Store> {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const store = await openStore(join(tmp.path, 'store'));
  cleanups.push(() => store.close());
  return store;
}

function action(id: string): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: 'overheat',
    action: 'notify',
    actor: 'dev-1',
    priority: 50,
    category: 'notice',
    decidedAt: 0,
    eventAt: 0,
    payload: {},
  };
}

function uplinkTo(url: string, store: Store): { uplink: Uplink; connected: () => boolean } {
  let up = false;
  const uplink = new Uplink({
    url,
    gatewayId: 'gw1',
    keepaliveMs: 30_000,
    reconnectMs: 50,
    inflight: 10,
    outbox: store.outbox,
    logger: pino({ level: 'silent' }),
    onConnectionChange: (connected) => (up = connected),
    onMessage: () => undefined,
  });
  uplink.connect();
  return { uplink, connected: () => up };
}

/** Resolves with how `stop` ended, or `hung` once STOP_WITHIN_MS passed. */
async function stopWithin(uplink: Uplink): Promise<'stopped' | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    uplink.stop().then(() => 'stopped' as const),
    new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), STOP_WITHIN_MS))),
  ]);
  clearTimeout(timer);
  return outcome;
}

describe('stopping the uplink ends, whatever the cloud does meanwhile', () => {
  test('the cloud went away a moment before stop, unnoticed yet', async () => {
    const store = await openOutbox();
    const cloud = await cloudBroker({ ackActions: true });
    const { uplink, connected } = uplinkTo(cloud.url, store);
    await waitUntil(connected, 5_000, 'the uplink connected');

    // Gone, and the client's socket has not read the close yet: stop still sees a connection.
    const closing = cloud.close();
    expect(uplink.connected).toBe(true);
    expect(await stopWithin(uplink)).toBe('stopped');
    await closing;
  });

  test('an action in flight gets a moment for its PUBACK', async () => {
    const store = await openOutbox();
    const cloud = await cloudBroker({ ackActions: true, ackAfterMs: 300 });
    const { uplink, connected } = uplinkTo(cloud.url, store);
    await waitUntil(connected, 5_000, 'the uplink connected');
    await store.outbox.add(action('a1'));
    uplink.kick();
    await new Promise((r) => setTimeout(r, 50));
    expect(store.outbox.size).toBe(1);

    expect(await stopWithin(uplink)).toBe('stopped');
    // Acknowledged before the connection ended: it left the outbox.
    expect(store.outbox.size).toBe(0);
  });

  test('actions in flight, unacknowledged, and the connection lost during stop', async () => {
    const store = await openOutbox();
    const cloud = await cloudBroker({ ackActions: false });
    const { uplink, connected } = uplinkTo(cloud.url, store);
    await waitUntil(connected, 5_000, 'the uplink connected');
    await store.outbox.add(action('a1'));
    await store.outbox.add(action('a2'));
    uplink.kick();
    await new Promise((r) => setTimeout(r, 200));

    const stopped = stopWithin(uplink);
    await new Promise((r) => setTimeout(r, 100));
    cloud.cut('vigil-gw1');
    expect(await stopped).toBe('stopped');
    // Never acknowledged: they wait in the outbox for the next start.
    expect(store.outbox.size).toBe(2);
  });

  test('never connected, or connecting to a cloud that is not there', async () => {
    const store = await openOutbox();
    const cloud = await cloudBroker({ ackActions: true });
    const url = cloud.url;
    await cloud.close();
    const idle = new Uplink({
      url,
      gatewayId: 'gw1',
      keepaliveMs: 30_000,
      reconnectMs: 50,
      inflight: 10,
      outbox: store.outbox,
      logger: pino({ level: 'silent' }),
    });
    expect(await stopWithin(idle)).toBe('stopped');

    const { uplink } = uplinkTo(url, store);
    await new Promise((r) => setTimeout(r, 200));
    expect(await stopWithin(uplink)).toBe('stopped');
  });
});
