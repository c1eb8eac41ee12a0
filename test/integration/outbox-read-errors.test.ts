import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway } from '../../src/app/index.js';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import type { Action } from '../../src/shared/index.js';
import type { ReopenableLevel } from '../../src/store/reopenable-level.js';
import { metricSum, until } from '../helpers/wait.js';
import { cloudDownConfig } from './cloud-down-config.js';

/**
 * The outbox keeps the first 1,024 actions in drain order in memory and reads the rest back from LevelDB ahead of
 * the drain. When that read fails, the gateway counts it in /metrics, tries again, and the drain loses nothing.
 * The whole gateway on a real LevelDB; the read fails at the store's boundary (LevelDB's iterators over the outbox
 * throw), while every write goes through.
 */
const DEVICES = 10;
const EVENTS_PER_DEVICE = 110;
const TOTAL = DEVICES * EVENTS_PER_DEVICE;
const READ_ERRORS = 'vigil_outbox_read_errors_total';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Makes every LevelDB iterator over the outbox's keys throw until the returned function is called. */
function failOutboxReads(db: ReopenableLevel): () => void {
  // The root's iterators get the range with the sublevel's prefix on its keys.
  const target = db as unknown as { _iterator(options: { gte?: unknown; gt?: unknown }): unknown };
  const native = target._iterator.bind(target);
  let failing = true;
  target._iterator = (options) => {
    const from = options.gte ?? options.gt;
    if (failing && typeof from === 'string' && from.startsWith('!outbox!'))
      throw new Error('injected: LevelDB read failed');
    return native(options);
  };
  return () => {
    failing = false;
  };
}

describe('a read-ahead of the outbox that fails', () => {
  test('is counted in /metrics and tried again; every queued action reaches the cloud', async () => {
    // The gateway starts with the cloud down.
    const { config, cloudPort } = await cloudDownConfig(cleanups, { log: { level: 'silent' } });
    let gateway = await startGateway(config);
    await Promise.all(
      Array.from({ length: DEVICES }, async (_, d) => {
        const id = `dev-${d}`;
        const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
          clientId: id,
          reconnectPeriod: 0,
        });
        try {
          for (let n = 0; n < EVENTS_PER_DEVICE; n++)
            await client.publishAsync(`devices/${id}/events/alarm`, JSON.stringify({ n }), { qos: 1 });
        } finally {
          await client.endAsync();
        }
      }),
    );
    await until('every action in the outbox', () => gateway.store.outbox.size === TOTAL, 15_000);
    // Started again: the outbox holds the first 1,024 actions in memory, the others on disk only.
    await gateway.stop();
    gateway = await startGateway(config);
    cleanups.push(() => gateway.stop());
    expect(gateway.store.outbox.loadedCount).toBeLessThan(TOTAL);
    const readsWork = failOutboxReads(gateway.store.db as ReopenableLevel);
    expect(await metricSum(gateway.http.port, READ_ERRORS)).toBe(0);

    const cloud: Broker = await startLocalBroker({ port: cloudPort, maxPacketBytes: 4 * 1024 * 1024 });
    cleanups.push(() => cloud.close());
    const received = new Set<string>();
    await cloud.subscribe('vigil/gw1/actions', (_topic, payload) => {
      received.add((JSON.parse(payload.toString()) as Action).id);
    });
    // The drain reaches the actions on disk only; reading them fails, again and again.
    await until(
      'two failed reads in /metrics',
      async () => ((await metricSum(gateway.http.port, READ_ERRORS)) ?? 0) >= 2,
      15_000,
    );
    // Only what memory held went out: the others wait in LevelDB until it reads again.
    expect(received.size).toBeLessThan(TOTAL);

    readsWork();
    await until('every action at the cloud', () => received.size === TOTAL, 20_000);
    await until('an empty outbox', () => gateway.store.outbox.size === 0, 5_000);
    expect(await metricSum(gateway.http.port, READ_ERRORS)).toBeGreaterThanOrEqual(2);
  });
});
