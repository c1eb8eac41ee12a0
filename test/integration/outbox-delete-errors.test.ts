import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import type { Action } from '../../src/shared/index.js';
import type { ReopenableLevel } from '../../src/store/reopenable-level.js';
import type { EncodedOp } from '../../src/store/store-writes.js';
import { metricSum, until } from '../helpers/wait.js';
import { cloudDownConfig } from './cloud-down-config.js';
import { captureLogs } from './durability-faults.js';

/**
 * When the cloud acknowledged actions, the outbox deletes them (and remembers their ids) in one LevelDB write. When
 * that write fails, the gateway counts it in /metrics, logs it, writes it again later, and the drain goes on: every
 * queued action reaches the cloud once, and none is sent again after a restart. The whole gateway on a real
 * LevelDB; the write fails at the store's boundary (LevelDB refuses every write that deletes an outbox entry), while
 * the others go through.
 */
const DEVICES = 10;
const ALARMS = DEVICES * 30;
const DELETE_ERRORS = 'vigil_outbox_delete_errors_total';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `perDevice` alarms from each of `devices` devices: each stays within the broker's rate per device. */
async function alarms(gw: Gateway, devices: number, perDevice: number, from = 0): Promise<void> {
  await Promise.all(
    Array.from({ length: devices }, async (_, d) => {
      const id = `dev-${d}`;
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
        clientId: id,
        reconnectPeriod: 0,
      });
      try {
        for (let n = from; n < from + perDevice; n++)
          await client.publishAsync(`devices/${id}/events/alarm`, JSON.stringify({ n }), { qos: 1 });
      } finally {
        await client.endAsync();
      }
    }),
  );
}

/** Makes every LevelDB write that deletes an outbox entry fail until the returned function is called. */
function failOutboxDeletes(db: ReopenableLevel): () => void {
  const native = db.writeEncoded.bind(db);
  let failing = true;
  db.writeEncoded = (ops: EncodedOp[], sync: boolean) => {
    if (failing && ops.some((op) => op.type === 'del' && op.key.startsWith('!outbox!')))
      return Promise.reject(new Error('injected: LevelDB write failed'));
    return native(ops, sync);
  };
  return () => {
    failing = false;
  };
}

describe('a failed delete of actions the cloud acknowledged', () => {
  test('is counted, logged and tried again; the drain goes on, and nothing is sent twice', async () => {
    // The gateway starts with the cloud down.
    const { config, cloudPort } = await cloudDownConfig(cleanups);
    const logs = captureLogs('warn');
    let gateway = await startGateway(config, { logger: logs.logger });
    await alarms(gateway, DEVICES, ALARMS / DEVICES);
    await until('every action in the outbox', () => gateway.store.outbox.size === ALARMS, 15_000);
    const deletesWork = failOutboxDeletes(gateway.store.db as ReopenableLevel);
    expect(await metricSum(gateway.http.port, DELETE_ERRORS)).toBe(0);

    const cloud: Broker = await startLocalBroker({ port: cloudPort });
    cleanups.push(() => cloud.close());
    const received: string[] = [];
    await cloud.subscribe('vigil/gw1/actions', (_topic, payload) => {
      received.push((JSON.parse(payload.toString()) as Action).id);
    });
    // More than the in-flight window (100): the drain goes on past deletes that fail.
    await until('every action at the cloud', () => received.length >= ALARMS, 20_000);
    await until('an empty outbox', () => gateway.store.outbox.size === 0, 10_000);
    expect(await metricSum(gateway.http.port, DELETE_ERRORS)).toBeGreaterThanOrEqual(1);
    expect(gateway.store.outbox.retryingDeletes).toBeDefined();
    const logged = logs.lines.find((l) =>
      String(l.msg).includes('deleting actions the cloud acknowledged failed'),
    );
    expect(logged?.err).toMatchObject({ message: expect.stringContaining('injected') as unknown });

    // LevelDB writes again: the deletes are written by the outbox's own retry.
    deletesWork();
    await gateway.store.outbox.retryingDeletes;
    expect(gateway.store.outbox.retryingDeletes).toBeUndefined();
    await gateway.stop();

    // Started again: nothing acknowledged is on disk to be sent again.
    gateway = await startGateway(config, { logger: logs.logger });
    cleanups.push(() => gateway.stop());
    await gateway.recovered;
    expect(gateway.store.outbox.size).toBe(0);
    await alarms(gateway, 1, 1, ALARMS);
    await until('the new alarm at the cloud', () => received.length > ALARMS, 10_000);
    await until('the cloud acknowledged it', () => gateway.store.outbox.size === 0, 5_000);
    expect(received).toHaveLength(ALARMS + 1);
    expect(new Set(received).size).toBe(ALARMS + 1);
  });
});
