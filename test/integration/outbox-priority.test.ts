import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/app/index.js';
import type { Action } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';

/**
 * The acceptance case of the drain order, through the whole gateway: 1,000 actions of four priorities
 * queue up while the cloud is down; when it comes back it receives them highest priority first, and in
 * the order they were decided within a priority. The rules (test/fixtures/rules/priorities) cap nothing
 * but the pace, 500 actions a second, so the drain also runs through the rate limiter.
 */
const RULES = fileURLToPath(new URL('../fixtures/rules/priorities', import.meta.url));
const EVENT_TYPES = ['alarm', 'fault', 'usage', 'debug'] as const;
const DEVICES = 50;
const EVENTS_PER_DEVICE = 20;
const TOTAL = DEVICES * EVENTS_PER_DEVICE;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function cloudBroker(port: number): Promise<Broker> {
  return startLocalBroker({ port, maxPacketBytes: 4 * 1024 * 1024 });
}

async function until(what: string, predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A fixed mix of event types: the same on every run, all four interleaved on every device. */
function eventType(device: number, n: number): (typeof EVENT_TYPES)[number] {
  const x = (device * 7919 + n * 104_729) % 97;
  return EVENT_TYPES[x % EVENT_TYPES.length] ?? 'debug';
}

describe('after an uplink outage', () => {
  test.each([
    { name: 'one action per message', batch: undefined },
    { name: 'batches of 25', batch: { max: 25, within: '20ms' } },
  ])(
    'the cloud receives 1,000 queued actions highest priority first, FIFO within a priority ($name)',
    async ({ batch }) => {
      const dir = await tempDir();
      cleanups.push(() => dir.remove());
      // The cloud's address, taken while nothing is there yet: the gateway starts with the cloud down.
      const probe = await cloudBroker(0);
      const cloudPort = probe.address.port;
      await probe.close();

      const decided: Action[] = [];
      const gateway = await startGateway(
        parseConfig({
          gatewayId: 'gw1',
          data: dir.path,
          rules: RULES,
          // Authentication is not what this test is about: devices connect anonymously.
          mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
          http: { port: 0 },
          upstream: {
            url: `mqtt://127.0.0.1:${cloudPort}`,
            reconnect: '100ms',
            ...(batch ? { batch } : {}),
          },
          log: { level: 'silent' },
        }),
        { onAction: (action, suppressed) => suppressed === undefined && decided.push(action) },
      );
      cleanups.push(() => gateway.stop());

      // Many devices, each publishing its events in order, all at once.
      await Promise.all(
        Array.from({ length: DEVICES }, async (_, d) => {
          const id = `dev-${d}`;
          const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
            clientId: id,
            reconnectPeriod: 0,
          });
          try {
            for (let n = 0; n < EVENTS_PER_DEVICE; n++) {
              await client.publishAsync(`devices/${id}/events/${eventType(d, n)}`, JSON.stringify({ n }), {
                qos: 1,
              });
            }
          } finally {
            await client.endAsync();
          }
        }),
      );
      await until('every action in the outbox', () => gateway.store.outbox.size === TOTAL, 15_000);
      expect(decided).toHaveLength(TOTAL);
      const priorities = new Set(decided.map((a) => a.priority));
      expect([...priorities].sort((a, b) => b - a)).toEqual([95, 70, 40, 5]);

      // The cloud comes back on the same address, and listens before the gateway reconnects.
      const cloud = await cloudBroker(cloudPort);
      cleanups.push(() => cloud.close());
      const received: Action[] = [];
      const messageSizes: number[] = [];
      await cloud.subscribe('vigil/gw1/actions', (_topic, payload) => {
        const body = JSON.parse(payload.toString()) as Action | Action[];
        const list = Array.isArray(body) ? body : [body];
        messageSizes.push(list.length);
        received.push(...list);
      });
      await until('every action at the cloud', () => received.length >= TOTAL, 20_000);
      await until('an empty outbox', () => gateway.store.outbox.size === 0, 5_000);

      // Highest priority first; within one, the order they were decided in (the outbox's FIFO).
      const expected = decided
        .map((action, i) => ({ action, i }))
        .sort((a, b) => b.action.priority - a.action.priority || a.i - b.i)
        .map(({ action }) => action.id);
      expect(received.map((a) => a.id)).toEqual(expected);
      if (batch) {
        expect(messageSizes.every((n) => n >= 1 && n <= batch.max)).toBe(true);
        expect(messageSizes.length).toBeLessThan(TOTAL / 2);
      } else {
        expect(messageSizes).toHaveLength(TOTAL);
      }
    },
  );
});
