import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import { DATA_FORMATS, type Action } from '../../src/shared/index.js';
import { openStore, STORE_FORMAT_KEY } from '../../src/store/index.js';
import { tempDir } from '../helpers/temp.js';
import { metricSum, until } from '../helpers/wait.js';
import { cloudDownConfig } from './cloud-down-config.js';
import { captureLogs, faultyStorage } from './durability-faults.js';

/**
 * The outbox drops actions when it is full, and remembers their ids as it remembers the ids the cloud acknowledged:
 * a recovery that decides the journal's tail again neither queues them again nor sends them to the cloud. The whole
 * gateway on a real journal and LevelDB; a crash is a stop whose checkpoints are never written, so that the next
 * start replays every input.
 */
const FIXTURES = fileURLToPath(new URL('../fixtures/upgrade/', import.meta.url));
const MAX_COUNT = 3;
const ALARMS = 7;
const NOT_RESENT = 'vigil_recovery_dropped_not_resent_total';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function alarms(gw: Gateway, from: number, count: number): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
    clientId: 'dev-1',
    reconnectPeriod: 0,
  });
  try {
    for (let n = from; n < from + count; n++)
      await client.publishAsync('devices/dev-1/events/alarm', JSON.stringify({ n }), { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

describe('actions dropped from a full outbox', () => {
  test('are neither queued again nor sent to the cloud when a recovery decides them again', async () => {
    // The gateway starts with the cloud down.
    const { config, cloudPort } = await cloudDownConfig(cleanups, {
      outbox: { maxCount: MAX_COUNT },
      log: { level: 'silent' },
    });
    // No checkpoint is ever written: the stop leaves the journal as a kill -9 would.
    const storage = faultyStorage();
    storage.fail('EIO', ['replace']);
    const decided: string[] = [];
    const first = await startGateway(config, {
      journalStorage: storage,
      logger: captureLogs('silent').logger,
      onAction: (action, suppressed) => suppressed === undefined && decided.push(action.id),
    });
    cleanups.push(() => first.stop());
    await alarms(first, 1, ALARMS);
    await until('every alarm decided', () => decided.length === ALARMS, 10_000);
    await until('the outbox full', () => first.store.outbox.size === MAX_COUNT, 10_000);
    await until(
      'the dropped actions counted',
      async () => (await metricSum(first.http.port, 'vigil_outbox_dropped_total')) === ALARMS - MAX_COUNT,
      10_000,
    );

    // The cloud comes back and takes what the outbox kept.
    const cloud: Broker = await startLocalBroker({ port: cloudPort });
    cleanups.push(() => cloud.close());
    const received: string[] = [];
    await cloud.subscribe('vigil/gw1/actions', (_topic, payload) => {
      received.push((JSON.parse(payload.toString()) as Action).id);
    });
    await until('the kept actions at the cloud', () => received.length === MAX_COUNT, 10_000);
    await until('an empty outbox', () => first.store.outbox.size === 0, 10_000);
    const kept = [...received];
    const dropped = decided.filter((id) => !kept.includes(id));
    expect(dropped).toHaveLength(ALARMS - MAX_COUNT);
    await first.stop();
    expect(storage.refused).toBeGreaterThan(0);

    const later: string[] = [];
    const second = await startGateway(config, {
      logger: captureLogs('silent').logger,
      onAction: (action, suppressed) => suppressed === undefined && later.push(action.id),
    });
    cleanups.push(() => second.stop());
    const report = await second.recovered;
    expect(report.replayed).toBeGreaterThanOrEqual(ALARMS);
    expect(await metricSum(second.http.port, NOT_RESENT)).toBe(ALARMS - MAX_COUNT);
    expect(dropped.map((id) => second.store.outbox.known(id))).toEqual(dropped.map(() => 'dropped'));
    // A new alarm: anything the replay queued would go before it (same priority, queued earlier).
    await alarms(second, ALARMS + 1, 1);
    await until('the new alarm decided', () => later.length === 1, 10_000);
    const fresh = later[0] as string;
    await until('the new alarm at the cloud', () => received.includes(fresh), 10_000);
    expect(received).toEqual([...kept, fresh]);
  });

  test('a data directory of the previous release opens, and remembers its actions once dropped', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    execFileSync('tar', ['-xzf', join(FIXTURES, 'v0.1.0-data.tar.gz'), '-C', tmp.path]);
    const data = join(tmp.path, 'data');
    let store = await openStore(data, { outbox: { maxCount: 1 } });
    cleanups.push(() => store.close());
    const old = store.outbox.next(100);
    expect(old.length).toBeGreaterThan(0);
    expect([store.outbox.unreadableOnOpen, store.outbox.droppedCount]).toEqual([0, 0]);

    const next: Action = { ...(old[0] as Action), id: 'next', priority: 1000 };
    expect(await store.outbox.add(next)).toEqual({ status: 'queued', dropped: old });
    await store.close();

    store = await openStore(data, { outbox: { maxCount: 1 } });
    expect(old.map((a) => store.outbox.known(a.id))).toEqual(old.map(() => 'dropped'));
    expect(await store.outbox.add(old[0] as Action)).toEqual({ status: 'dropped', dropped: [] });
    expect(store.outbox.next(100).map((a) => a.id)).toEqual(['next']);
    // Dropped ids are an area an older build of this format does not read: the format stays.
    expect(await store.sublevels.state.get(STORE_FORMAT_KEY)).toMatchObject({ format: DATA_FORMATS.store });
  });
});
