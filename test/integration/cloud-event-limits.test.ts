import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { startLocalBroker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import type { DeadLetter } from '../../src/ingest/index.js';
import type { Action } from '../../src/shared/index.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ORDER = `
id: order
priority: 50
category: maintenance
when:
  event: order
then:
  action: confirm-order
  to: [upstream]
  payload:
    n: data.n
`;

async function metric(gateway: Gateway, name: string, labels: string): Promise<number> {
  const text = await gateway.metrics.registry.getSingleMetricAsString(name);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return Number(line?.split(' ').at(-1) ?? Number.NaN);
}

test('cloud events over the size or the rate are dead-lettered, counted and acknowledged; the rest are decided', async () => {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const rules = join(tmp.path, 'rules');
  await mkdir(rules);
  await writeFile(join(rules, 'order.yaml'), ORDER);
  const cloud = await startLocalBroker();
  cleanups.push(() => cloud.close());
  const cloudUrl = `mqtt://127.0.0.1:${cloud.address.port}`;
  const seen = await Collector.connect(cloudUrl, ['vigil/gw1/status']);
  cleanups.push(() => seen.close());
  const business = await mqtt.connectAsync(cloudUrl, { clientId: 'crm', reconnectPeriod: 0 });
  cleanups.push(() => business.endAsync());

  // A bucket of 4 that refills once in 1,000 s: exactly 4 events pass, whatever the timing.
  const config = parseConfig({
    gatewayId: 'gw1',
    data: join(tmp.path, 'data'),
    rules,
    mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
    http: { port: 0 },
    upstream: { url: cloudUrl, reconnect: '200ms' },
    ingest: { cloudEvents: { maxBytes: 256, rate: { perSecond: 0.001, burst: 4 } } },
    log: { level: 'silent' },
  });
  const run = async () => {
    const decided: Action[] = [];
    const online = seen.messages.filter((m) => m.payload.toString() === 'online').length;
    const gateway = await startGateway(config, { onAction: (a) => decided.push(a) });
    cleanups.push(() => gateway.stop());
    await gateway.recovered;
    await seen.waitFor(
      (m) => m.filter((x) => x.payload.toString() === 'online').length > online,
      5_000,
      'the gateway online',
    );
    const deadLetters = await Collector.connect(`mqtt://127.0.0.1:${gateway.mqtt.port}`, [
      'vigil/deadletter',
    ]);
    cleanups.push(() => deadLetters.close());
    return { gateway, decided, deadLetters };
  };

  const first = await run();
  const big = JSON.stringify({ actor: 'cust-1', type: 'order', data: { pad: 'x'.repeat(300) } });
  await business.publishAsync('vigil/gw1/events', big, { qos: 1 });
  for (let n = 1; n <= 10; n++) {
    const payload = JSON.stringify({ actor: `cust-${n % 3}`, type: 'order', data: { n } });
    await business.publishAsync('vigil/gw1/events', payload, { qos: n % 2 === 0 ? 1 : 0 });
  }
  await first.deadLetters.waitFor((m) => m.length >= 7, 10_000, '7 dead letters');
  const reasons = first.deadLetters.json<DeadLetter>().map((d) => d.reason);
  expect(reasons.sort()).toEqual(['rate', 'rate', 'rate', 'rate', 'rate', 'rate', 'too-large']);
  await expect.poll(() => first.decided.length).toBe(4);
  expect(first.decided.map((a) => a.payload['n'])).toEqual([1, 2, 3, 4]);
  expect(await metric(first.gateway, 'vigil_cloud_event_limit_hits_total', 'limit="size"')).toBe(1);
  expect(await metric(first.gateway, 'vigil_cloud_event_limit_hits_total', 'limit="rate"')).toBe(6);
  expect(await metric(first.gateway, 'vigil_cloud_event_limit', 'limit="burst"')).toBe(4);
  expect(await metric(first.gateway, 'vigil_ingest_rejects_total', 'reason="rate"')).toBe(6);
  await first.gateway.stop();

  // Every one of them was acknowledged: the broker delivers none of them again to the next run.
  const second = await run();
  await new Promise((r) => setTimeout(r, 500));
  expect(second.decided).toEqual([]);
  expect(second.deadLetters.messages).toEqual([]);
  expect(await metric(second.gateway, 'vigil_cloud_event_limit_hits_total', 'limit="rate"')).toBe(0);
}, 30_000);
