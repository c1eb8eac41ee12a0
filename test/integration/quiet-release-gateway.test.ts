import mqtt from 'mqtt';
import { afterEach, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

/** A running gateway gone quiet after its memory grew gives it back once, logged and counted in /metrics. */
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function metric(gw: Gateway, series: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${gw.http.port}/metrics`);
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a burst leaves in this process (the gateway's): a heap grown well past what stays in use. */
function burst(): number {
  const made: Array<{ id: string; at: number[] }> = [];
  for (let i = 0; i < 1_500_000; i++) made.push({ id: `device-${i}`, at: [i, i + 1] });
  return made.length;
}

async function quietGateway(releaseWhenQuiet: string) {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const clock = { at: Date.UTC(2025, 5, 1, 8, 0) };
  const logs = captureLogs('info');
  const gw = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: dir.path,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      limits: { releaseWhenQuiet },
      log: { level: 'silent' },
    }),
    { clock: { now: () => clock.at }, logger: logs.logger },
  );
  cleanups.push(() => gw.stop());
  await gw.recovered;
  // The first check, which notes where the memory stands.
  await sleep(400);
  return { gw, clock, logs };
}

const WRITTEN = 'vigil_checkpoints_total{result="written"}';

test('a gateway whose memory grew gives it back once quiet, logged and counted', async () => {
  const { gw, clock, logs } = await quietGateway('1s');
  expect(await metric(gw, 'vigil_memory_releases_total')).toBe(0);
  expect(burst()).toBe(1_500_000);
  const deadline = Date.now() + 15_000;
  while ((await metric(gw, 'vigil_memory_releases_total')) < 1) {
    if (Date.now() > deadline) throw new Error('no memory was given back');
    clock.at += 2_000;
    await sleep(100);
  }
  const released = await metric(gw, 'vigil_memory_released_bytes_total');
  expect(released).toBeGreaterThan(0);
  expect(await metric(gw, 'vigil_memory_release_pause_seconds_total')).toBeGreaterThan(0);
  const said = logs.lines.filter((l) => String(l.msg).startsWith('quiet: memory given back'));
  expect(said).toHaveLength(1);
  const line = said[0] as Record<string, number>;
  expect(line.rssAfterMB).toBeLessThan(line.rssMB as number);
  expect(line.heapTotalAfterMB).toBeLessThan(line.heapTotalMB as number);
  // Not again within the least interval, however quiet, though it grew again.
  expect(burst()).toBe(1_500_000);
  for (let i = 0; i < 5; i++) {
    clock.at += 60_000;
    await sleep(300);
  }
  expect(await metric(gw, 'vigil_memory_releases_total')).toBe(1);
}, 30_000);

test('releaseWhenQuiet 0 makes no collection', async () => {
  const { gw, clock } = await quietGateway('0s');
  expect(burst()).toBe(1_500_000);
  for (let i = 0; i < 10; i++) {
    clock.at += 60_000;
    await sleep(100);
  }
  expect(await metric(gw, 'vigil_memory_releases_total')).toBe(0);
}, 30_000);

test('the checkpoint owed is taken before the collection, so that it does not take back what was given', async () => {
  const { gw, clock } = await quietGateway('1s');
  // The checkpoint taken on going live, written first.
  while ((await metric(gw, WRITTEN)) < 1) await sleep(50);
  const checkpoints = await metric(gw, WRITTEN);
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
    clientId: 'd1',
    reconnectPeriod: 0,
  });
  await client.publishAsync('devices/d1/events/telemetry', JSON.stringify({ temp: 20 }), { qos: 1 });
  await client.endAsync();
  expect(burst()).toBe(1_500_000);
  const deadline = Date.now() + 15_000;
  let releases = 0;
  let written = checkpoints;
  while (releases < 1) {
    if (Date.now() > deadline) throw new Error('no memory was given back');
    clock.at += 2_000;
    await sleep(100);
    written = await metric(gw, WRITTEN);
    releases = await metric(gw, 'vigil_memory_releases_total');
  }
  // The periodic checkpoint is minutes away: this one was taken for the release, before it.
  expect(written).toBeGreaterThan(checkpoints);
}, 30_000);
