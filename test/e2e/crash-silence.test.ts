import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { tempDir } from '../helpers/temp.js';
import { connectDevice, gatewayArgs, startCloud, waitUntil, writeRules } from './crash-harness.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The shipped device-offline scenario with a period of 3 s (5 minutes in rules/). */
const SILENCE_MS = 3_000;
const RULES = {
  'device-offline.yaml': `id: device-offline
description: A device that has sent nothing for 3 seconds is offline. Reported once per silence.
priority: 90
category: support
when:
  absent: any
  for: 3s
then:
  action: device-offline
  to: [upstream]
  payload:
    lastSeen: last.at
`,
};

describe('a device that goes silent while the gateway is down', () => {
  test('is reported once, after the grace period, late, with its original deadline; one that comes back in time is not', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const rules = await writeRules(join(dir.path, 'rules'), RULES);
    const cloud = await startCloud();
    cleanups.push(() => cloud.stop());

    const args = (port: number) =>
      gatewayArgs({ port, data: join(dir.path, 'data'), rules, upstream: cloud.url });
    const connect = connectDevice;
    let gateway = await startGatewayProcess(args(0));
    const port = gateway.mqttPort;
    for (const id of ['quiet', 'back']) {
      const device = await connect(port, id);
      await device.publishAsync(`devices/${id}/events/heartbeat`, '{}', { qos: 1 });
      await device.endAsync();
    }
    // Killed before the deadline, started again well after it: the deadline passed while it was down.
    await new Promise((r) => setTimeout(r, 1_000));
    await gateway.kill();
    await new Promise((r) => setTimeout(r, SILENCE_MS + 1_000));
    const restartedAt = Date.now();
    gateway = await startGatewayProcess(args(port));
    cleanups.push(() => gateway.stop());

    // `back` speaks during the grace period and keeps speaking.
    await new Promise((r) => setTimeout(r, 1_000));
    const back = await connect(port, 'back');
    const beat = setInterval(() => {
      back.publish('devices/back/events/heartbeat', '{}', { qos: 1 });
    }, 500);
    cleanups.push(async () => {
      clearInterval(beat);
      await back.endAsync();
    });

    await waitUntil(() => cloud.actions.length > 0, 10_000, 'the offline action');
    const [first] = cloud.actions;
    // The grace period is the scenario's own period, counted from the restart.
    expect(first?.at).toBeGreaterThanOrEqual(restartedAt + SILENCE_MS);
    expect(first?.action).toMatchObject({ scenario: 'device-offline', actor: 'quiet', late: true });
    const lastSeen = first?.action.payload.lastSeen as number;
    expect(first?.action.eventAt).toBe(lastSeen + SILENCE_MS);
    expect(first?.action.eventAt).toBeLessThan(restartedAt);

    await new Promise((r) => setTimeout(r, 2_000));
    expect(cloud.actions.map((r) => [r.action.actor, r.action.id])).toEqual([['quiet', first?.action.id]]);
  });
});
