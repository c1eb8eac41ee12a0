import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startLocalBroker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/app/index.js';
import type { Action } from '../../src/shared/index.js';
import { encodeCbor } from '../../src/store/index.js';
import type { ProfileBatchStatus } from '../../src/sync/index.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const HOT = `
id: hot
priority: 50
category: maintenance
when:
  event: telemetry
  where: data.temp > profile.maxTemp
then:
  action: cool-down
  to: []
  payload:
    site: profile.site
`;

const PROBE = `
id: probe
priority: 10
category: audit
when:
  event: probe
then:
  action: probe
  to: []
`;

describe('profile batches from the cloud', () => {
  test('upserts and deletes reach the decisions; a replay changes nothing; a batch after a gap is refused with the seq to send', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const cloud = await startLocalBroker();
    cleanups.push(() => cloud.close());
    const cloudUrl = `mqtt://127.0.0.1:${cloud.address.port}`;
    const rulesDir = join(tmp.path, 'rules');
    await mkdir(rulesDir);
    await writeFile(join(rulesDir, 'hot.yaml'), HOT);
    await writeFile(join(rulesDir, 'probe.yaml'), PROBE);
    const statuses = await Collector.connect(cloudUrl, [
      'vigil/gw1/profiles/status',
      'vigil/gw1/rules/status',
    ]);
    cleanups.push(() => statuses.close());
    const upstream = await mqtt.connectAsync(cloudUrl, { reconnectPeriod: 0 });
    cleanups.push(() => upstream.endAsync());
    await upstream.publishAsync('vigil/gw1/rules', 'not a bundle', { qos: 1, retain: true });
    const actions: Action[] = [];
    const gateway = await startGateway(
      parseConfig({
        gatewayId: 'gw1',
        data: join(tmp.path, 'data'),
        rules: rulesDir,
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
        http: { port: 0 },
        upstream: { url: cloudUrl, reconnect: '200ms' },
        log: { level: 'silent' },
      }),
      { onAction: (a) => actions.push(a) },
    );
    cleanups.push(() => gateway.stop());
    await gateway.recovered;
    const send = async (batch: unknown, cbor = false): Promise<ProfileBatchStatus> => {
      const seen = statuses.messages.length;
      const payload = cbor ? Buffer.from(encodeCbor(batch)) : JSON.stringify(batch);
      await upstream.publishAsync('vigil/gw1/profiles', payload, { qos: 1 });
      const answered = (m: typeof statuses.messages) =>
        m.slice(seen).find((x) => x.topic === 'vigil/gw1/profiles/status');
      await statuses.waitFor((m) => answered(m) !== undefined, 5_000, 'a profile batch status');
      return JSON.parse(answered(statuses.messages)?.payload.toString() ?? '') as ProfileBatchStatus;
    };
    const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
      clientId: 'd1',
      reconnectPeriod: 0,
    });
    cleanups.push(() => dev.endAsync());
    // A probe after each reading: events of one device are processed in order, so once the probe is decided
    // the reading has been too.
    const reading = async (temp: number): Promise<Action | undefined> => {
      const before = actions.length;
      await dev.publishAsync('devices/d1/events/telemetry', JSON.stringify({ temp }), { qos: 1 });
      await dev.publishAsync('devices/d1/events/probe', '{}', { qos: 1 });
      const deadlineAt = Date.now() + 5_000;
      while (!actions.slice(before).some((a) => a.scenario === 'probe')) {
        if (Date.now() > deadlineAt) throw new Error('the probe was not decided');
        await new Promise((r) => setTimeout(r, 10));
      }
      return actions.slice(before).find((a) => a.scenario === 'hot');
    };

    // Once the gateway answers the retained message on its rules topic, its subscription (profiles included) is up.
    await statuses.waitFor(
      (m) => m.some((x) => x.topic === 'vigil/gw1/rules/status'),
      10_000,
      'the rules status',
    );
    expect(await send({ seq: 1, upsert: [{ id: 'd1', maxTemp: 50, site: 'north' }] })).toMatchObject({
      seq: 1,
      status: 'applied',
      expected: 2,
    });
    expect(await reading(45)).toBeUndefined();
    expect((await reading(55))?.payload).toEqual({ site: 'north' });

    // CBOR, and the profile changes: the cache follows.
    expect(await send({ seq: 2, upsert: [{ id: 'd1', maxTemp: 60, site: 'south' }] }, true)).toMatchObject({
      status: 'applied',
    });
    expect(await reading(55)).toBeUndefined();
    expect((await reading(65))?.payload).toEqual({ site: 'south' });

    // Replayed: nothing changes, even what a later batch changed.
    expect(await send({ seq: 1, upsert: [{ id: 'd1', maxTemp: 50, site: 'north' }] })).toMatchObject({
      status: 'duplicate',
      expected: 3,
    });
    expect(await gateway.store.profiles.get('d1')).toEqual({ id: 'd1', maxTemp: 60, site: 'south' });

    // A gap: refused, nothing applied, and the status names the seq to send.
    expect(await send({ seq: 5, delete: ['d1'] })).toMatchObject({
      status: 'refused',
      reason: 'gap',
      expected: 3,
    });
    expect(await gateway.store.profiles.get('d1')).toEqual({ id: 'd1', maxTemp: 60, site: 'south' });

    expect(await send({ seq: 3, delete: ['d1'] })).toMatchObject({
      status: 'applied',
      deletes: 1,
      expected: 4,
    });
    expect(await gateway.store.profiles.get('d1')).toBeUndefined();
    expect(await reading(65)).toBeUndefined();
  });
});
