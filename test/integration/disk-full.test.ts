import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test, type TestContext } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import { waitUntil, writeRules } from '../e2e/crash-harness.js';
import { tempDir } from '../helpers/temp.js';
import { mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { captureLogs } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DISK_BYTES = 8 * 1024 * 1024;

/** Every reading goes to the outbox (no upstream: it stays there), with its number and, if it has one, its blob. */
const RULES = {
  'reading.yaml': `id: reading
description: Every reading becomes an action, with its number.
priority: 50
category: maintenance
when:
  event: telemetry
then:
  action: log-reading
  to: [upstream]
  payload:
    n: data.n
    blob: 'has(data.blob) ? data.blob : ""'
`,
};

interface Health {
  status: string;
  diskFull: boolean;
  auditLost: number;
  durability: { state: string; held: number; shed: number; fault?: { error: string; diskFull: boolean } };
  store: { state: string; reopens: number; fault?: { diskFull: boolean } };
}

interface Setup {
  disk: Tmpfs;
  data: string;
  rules: string;
  lines: Array<Record<string, unknown>>;
}

async function setUp(ctx: TestContext): Promise<Setup> {
  const mounted = await mountTmpfs(DISK_BYTES);
  if (typeof mounted === 'string') ctx.skip(mounted);
  cleanups.push(() => mounted.unmount());
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const rules = await writeRules(join(dir.path, 'rules'), RULES);
  return { disk: mounted, data: join(mounted.path, 'data'), rules, lines: [] };
}

async function start(s: Setup): Promise<Gateway> {
  const { logger, lines } = captureLogs();
  s.lines = lines;
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: s.data,
      rules: s.rules,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
    }),
    { logger },
  );
  let stopped = false;
  cleanups.push(() => (stopped ? Promise.resolve() : gateway.stop()));
  await gateway.recovered;
  return Object.assign(Object.create(gateway) as Gateway, {
    stop: async () => {
      stopped = true;
      await gateway.stop();
    },
  });
}

async function device(gateway: Gateway, id: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
    clientId: id,
    reconnectPeriod: 0,
  });
  client.on('error', () => undefined);
  cleanups.push(() => client.endAsync(true));
  return client;
}

async function health(gateway: Gateway): Promise<Health> {
  return (await (await fetch(`http://127.0.0.1:${gateway.http.port}/healthz`)).json()) as Health;
}

async function metric(gateway: Gateway, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gateway.http.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Waits for the checkpoint a fresh gateway takes once it has recovered: it is written beside the first inputs, and
 * one that met the full disk would only be tried again at the next interval (minutes away), so the disk is filled
 * after it.
 */
async function startupCheckpoint(gateway: Gateway): Promise<void> {
  await eventually(
    () => metric(gateway, 'vigil_checkpoints_total{result="written"}'),
    (v) => v >= 1,
    'the start-up checkpoint',
  );
}

/** The reading numbers of the actions in the outbox. */
function inOutbox(gateway: Gateway): Set<number> {
  return new Set(gateway.store.outbox.next(100_000).map((a) => (a.payload as { n: number }).n));
}

const reading = (n: number, blobBytes = 0) =>
  JSON.stringify(blobBytes > 0 ? { n, blob: 'b'.repeat(blobBytes) } : { n });

/** Resolves true once the publish is acknowledged, false if it is not within `ms` (it may still be later). */
function ackedWithin(publish: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([
    publish.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), ms)),
  ]);
}

describe('a disk that really fills up (tmpfs)', () => {
  test('QoS 1 is held and QoS 0 shed while it is full, the gateway says so, resumes by itself when there is room, and restarts cleanly with every acknowledged action', async (ctx) => {
    const s = await setUp(ctx);
    const gateway = await start(s);
    const sensor = await device(gateway, 'dev-a');
    const chatty = await device(gateway, 'dev-b');
    const publish = (client: MqttClient, id: string, n: number, qos: 0 | 1) =>
      client.publishAsync(`devices/${id}/events/telemetry`, reading(n, 2_000), { qos });
    await publish(sensor, 'dev-a', 1, 1);
    await waitUntil(() => inOutbox(gateway).has(1), 5_000, 'the action of reading 1');
    await startupCheckpoint(gateway);
    expect((await health(gateway)).status).toBe('ok');

    s.disk.fill();
    expect(await s.disk.freeBytes()).toBeLessThan(4096);
    // The journal's last page may still take a record or two: those are recorded and acknowledged. The first
    // one that does not fit is held.
    const acked = [1];
    let held: Promise<unknown> | undefined;
    let heldN = 0;
    for (let n = 2; n < 40 && held === undefined; n++) {
      const sent = publish(sensor, 'dev-a', n, 1);
      if (await ackedWithin(sent, 1_500)) acked.push(n);
      else [held, heldN] = [sent, n];
    }
    if (held === undefined) throw new Error('every publish was acknowledged: the disk never filled');
    let heldAcked = false;
    void held.then(() => (heldAcked = true));

    const during = await eventually(
      () => health(gateway),
      (h) => h.durability.state === 'storage-fault',
      'the storage fault on /healthz',
    );
    expect(during).toMatchObject({ status: 'degraded', diskFull: true });
    expect(during.durability.fault?.diskFull).toBe(true);
    expect(during.durability.fault?.error).toMatch(/ENOSPC/);
    expect(await metric(gateway, 'vigil_storage_fault')).toBe(1);
    expect(await metric(gateway, 'vigil_disk_full')).toBe(1);

    // QoS 0 from another device: shed and counted, not held.
    for (let n = 1001; n <= 1010; n++) await publish(chatty, 'dev-b', n, 0);
    await eventually(
      () => metric(gateway, 'vigil_events_shed_total{reason="storage-fault"}'),
      (v) => v === 10,
      'ten QoS 0 events shed',
    );
    expect((await health(gateway)).durability.shed).toBe(10);

    // A profile change is journaled before it is written: while the journal cannot write it waits, held like a
    // QoS 1 publish. LevelDB itself refuses writes too (a batch of profiles needs new pages).
    const profiles = Array.from({ length: 100 }, (_, i) => ({
      id: `p${i}`,
      profile: { site: 'north', note: 'n'.repeat(1_000) },
    }));
    let profileChangeSettled = false;
    const profileChange = gateway.store.profiles
      .putMany(profiles)
      .finally(() => (profileChangeSettled = true))
      .catch(() => undefined);
    const raw = profiles.map(({ id, profile }) => ({ type: 'put' as const, key: id, value: profile }));
    await expect(gateway.store.sublevels.profiles.batch(raw)).rejects.toThrow(/No space left/);
    expect((await health(gateway)).store).toMatchObject({
      state: 'refusing-writes',
      fault: { diskFull: true },
    });

    await new Promise((r) => setTimeout(r, 1_000));
    expect(heldAcked).toBe(false);
    expect(profileChangeSettled).toBe(false);
    expect(inOutbox(gateway).has(heldN)).toBe(false);
    expect(sensor.connected).toBe(true);
    expect(s.lines.some((l) => l.level === 50 && String(l.msg).startsWith('STORAGE FAULT'))).toBe(true);

    await s.disk.drain();
    await held;
    // Recorded now; written, or refused if LevelDB was not reopened yet (written again below).
    await profileChange;
    acked.push(heldN);
    await waitUntil(() => inOutbox(gateway).has(heldN), 10_000, 'the action of the held reading');
    const after = await eventually(
      () => health(gateway),
      (h) => h.status === 'ok',
      '/healthz back to ok',
    );
    expect(after).toMatchObject({ diskFull: false, store: { state: 'ok', reopens: 1 } });
    expect(await metric(gateway, 'vigil_storage_fault')).toBe(0);
    expect(await metric(gateway, 'vigil_leveldb_reopens_total')).toBe(1);

    // New events flow, QoS 1 and QoS 0, and LevelDB takes writes again.
    await publish(sensor, 'dev-a', 50, 1);
    acked.push(50);
    await publish(chatty, 'dev-b', 1050, 0);
    await waitUntil(
      () => inOutbox(gateway).has(50) && inOutbox(gateway).has(1050),
      5_000,
      'the actions of the new readings',
    );
    await gateway.store.profiles.putMany(profiles);
    await gateway.stop();

    // Restarted on the same disk: the journal and LevelDB open cleanly, every acknowledged reading has its
    // action, and no shed one has.
    const again = await start(s);
    expect(s.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    const actions = inOutbox(again);
    for (const n of [...acked, 1050]) expect(actions.has(n), `reading ${n}`).toBe(true);
    for (let n = 1001; n <= 1010; n++) expect(actions.has(n), `shed reading ${n}`).toBe(false);
    expect(actions.size).toBe(acked.length + 1);
    expect(await again.store.profiles.get('p99')).toMatchObject({ site: 'north' });
    expect((await health(again)).status).toBe('ok');
  });

  test('an outbox batch that meets a full disk is retried once LevelDB is reopened, and the action is kept once', async (ctx) => {
    const s = await setUp(ctx);
    const gateway = await start(s);
    const sensor = await device(gateway, 'dev-a');
    await startupCheckpoint(gateway);
    // The disk fills at the moment the outbox writes: the journal has already recorded the reading.
    let armed = true;
    gateway.store.db.hooks.prewrite.add((op: unknown) => {
      const { type, key, sublevel } = op as { type: string; key: unknown; sublevel?: { prefix?: string } };
      // The outboxes write their keys with the area's prefix already on (`StoreWrites`).
      const outbox =
        sublevel?.prefix === '!outbox!' || (typeof key === 'string' && key.startsWith('!outbox!'));
      if (armed && type === 'put' && outbox) {
        armed = false;
        s.disk.fill();
      }
    });
    await sensor.publishAsync('devices/dev-a/events/telemetry', reading(1, 6_000), { qos: 1 });
    const during = await eventually(
      () => health(gateway),
      (h) => h.store.state === 'refusing-writes',
      'LevelDB refusing writes on /healthz',
    );
    expect(during).toMatchObject({
      status: 'degraded',
      diskFull: true,
      store: { fault: { diskFull: true } },
    });
    expect(armed).toBe(false);
    expect(inOutbox(gateway).has(1)).toBe(false);
    await eventually(
      () => metric(gateway, 'vigil_outbox_write_retries_total'),
      (v) => v >= 2,
      'the outbox write retried',
    );
    expect(await metric(gateway, 'vigil_leveldb_write_fault')).toBe(1);
    // The audit log's write of that decision is dropped, and counted.
    await eventually(
      () => health(gateway),
      (h) => h.auditLost >= 1,
      'the audit entry counted as lost',
    );

    await s.disk.drain();
    await waitUntil(() => inOutbox(gateway).has(1), 10_000, 'the action written after the reopen');
    await eventually(
      () => health(gateway),
      (h) => h.status === 'ok',
      '/healthz back to ok',
    );
    await sensor.publishAsync('devices/dev-a/events/telemetry', reading(2), { qos: 1 });
    await waitUntil(() => inOutbox(gateway).has(2), 5_000, 'the action of reading 2');
    await gateway.stop();

    const again = await start(s);
    expect(s.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    const actions = again.store.outbox.next(100);
    expect(actions.map((a) => (a.payload as { n: number }).n).sort()).toEqual([1, 2]);
    expect((actions[0]?.payload as { blob: string }).blob).toHaveLength(6_000);
  });
});
