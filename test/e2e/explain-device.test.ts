import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { DeviceExplanation, ScenarioExplanation } from '../../src/dashboard/index.js';
import { runCli } from '../helpers/cli.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { connectDevice, crashScene, waitUntil } from './crash-harness.js';

// Needs `npm run build` first: the gateway and the command line are the built dist/cli.js.

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const RULES = {
  'doors.yaml': `id: door-storm
description: Five door openings within ten minutes.
priority: 40
category: notice
when:
  event: door-open
  count: 5
  within: 10m
then:
  action: check-door
  to: [upstream]
`,
  'warm.yaml': `id: warm-average
description: The average temperature over five minutes is above 70.
priority: 40
category: maintenance
when:
  event: telemetry
  window: 5m
  aggregate:
    avgTemp: avg(data.temp)
  having: avgTemp > 70
then:
  action: cool-down
  to: [upstream]
`,
  'quiet.yaml': `id: gone-quiet
description: Nothing from the device for an hour.
priority: 30
category: notice
when:
  absent: any
  for: 1h
then:
  action: ping
  to: [upstream]
`,
  'install.yaml': `id: install-flow
description: A technician arrives, then the install completes within two hours.
priority: 30
category: notice
when:
  sequence:
    - event: arrived
    - event: installed
      within: 2h
then:
  action: install-done
  to: [upstream]
`,
  'offer.yaml': `id: upsell
description: An offer on each promo event.
priority: 20
category: offer
when:
  event: promo
then:
  action: offer
  to: [upstream]
`,
  'support.yaml': `id: support-call
description: A support call on each ticket.
priority: 90
category: support
when:
  event: ticket
then:
  action: call-back
  to: [upstream]
`,
  'policy.yaml': `policy:
  contact:
    max: 1
    per: 24h
    except: [support]
  exclusive:
    - active: support
      for: 2h
      suppress: [offer]
`,
};

async function explain(base: string, id: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${base}/api/devices/${encodeURIComponent(id)}/explain`);
  return { status: res.status, body: await res.json() };
}

describe('GET /api/devices/{id}/explain and vigil explain DEVICE', () => {
  test('where a device stands in every scenario, and why its actions were sent or held back', async () => {
    const scene = await crashScene({ rules: RULES, onCleanup: (c) => cleanups.push(c) });
    const gateway = await startGatewayProcess(scene.args(0));
    cleanups.push(() => gateway.stop());
    const base = `http://127.0.0.1:${gateway.httpPort}`;
    const device = await connectDevice(gateway.mqttPort, 'feeder');
    cleanups.push(() => device.endAsync(true));
    const send = (type: string, data: object = {}) =>
      device.publishAsync(`devices/dev-1/events/${type}`, JSON.stringify(data), { qos: 1 });
    for (let i = 0; i < 3; i++) await send('door-open');
    for (const temp of [60, 62.5, 61.1]) await send('telemetry', { temp });
    await send('arrived');
    await send('promo'); // sent
    await send('promo'); // the contact cap: 1 per 24h
    await send('ticket'); // support, sent
    await send('promo'); // exclusive: the support action came first
    await waitUntil(
      () => scene.cloud.actions.length >= 2,
      10_000,
      'the offer and the call-back at the cloud',
    );

    const { status, body } = await explain(base, 'dev-1');
    expect(status).toBe(200);
    const e = body as DeviceExplanation;
    expect(e.device).toBe('dev-1');
    const of = (id: string) => e.scenarios.find((s) => s.scenario === id) as ScenarioExplanation;
    expect(e.scenarios.map((s) => s.scenario).sort()).toEqual(
      ['door-storm', 'gone-quiet', 'install-flow', 'support-call', 'upsell', 'warm-average'].sort(),
    );

    const doors = of('door-storm');
    expect(doors.groups).toMatchObject([{ group: 'dev-1', figures: { count: 3, of: 5 } }]);
    expect(doors.state).toMatch(/^count 3 of 5 within 10m; the oldest leaves the window at \S+Z$/);

    const warm = of('warm-average');
    expect(warm.groups[0]?.figures).toEqual({ avgTemp: 61.2 });
    expect(warm.state).toContain('avgTemp 61.2 over the 5m window (3 events); fires when avgTemp > 70');

    const quiet = of('gone-quiet');
    const deadline = quiet.groups[0]?.dueAt ?? 0;
    expect(deadline).toBeGreaterThan(e.at);
    expect(quiet.state).toBe(
      `waiting for any event until ${new Date(deadline).toISOString()} (silence deadline; the last came at ${new Date(deadline - 3_600_000).toISOString()})`,
    );

    const install = of('install-flow');
    expect(install.state).toMatch(/^step 2 of 2: waiting for installed until \S+Z$/);
    expect(install.groups[0]?.untilAt).toBe((install.groups[0]?.sinceAt ?? 0) + 2 * 3_600_000);

    // The decisions, newest first, each with its reason in words.
    const upsell = of('upsell');
    expect(upsell.state).toBe('nothing pending');
    const [third, second, first] = upsell.decisions;
    expect(first).toMatchObject({ verdict: 'sent', why: 'sent', action: 'offer' });
    const firstAt = first?.at ?? 0;
    expect(second).toMatchObject({
      verdict: 'suppressed',
      reason: 'contact',
      untilAt: firstAt + 24 * 3_600_000,
      why: `suppressed by the contact cap 1 per 24h until ${new Date(firstAt + 24 * 3_600_000).toISOString()}`,
    });
    const callAt = of('support-call').decisions[0]?.at ?? 0;
    expect(of('support-call').decisions[0]).toMatchObject({ verdict: 'sent' });
    expect(third).toMatchObject({
      verdict: 'suppressed',
      reason: 'exclusive:support',
      becauseAt: callAt,
      untilAt: callAt + 2 * 3_600_000,
    });
    expect(third?.why).toBe(
      `exclusive because of a support action at ${new Date(callAt).toISOString()} (support-call): ` +
        `no offer for 2h, until ${new Date(callAt + 2 * 3_600_000).toISOString()}`,
    );

    // The command line, through the running gateway's API.
    const text = await runCli(['explain', 'dev-1', '--data', scene.data]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^dev-1 at \S+Z$/m);
    expect(text.stdout).toContain('door-storm (count): Fires when 5 door-open events come within 10m');
    expect(text.stdout).toMatch(/^ {2}now: count 3 of 5 within 10m;/m);
    expect(text.stdout).toMatch(/^ {2}\S+Z offer: exclusive because of a support action at /m);
    const json = await runCli(['explain', 'dev-1', '--data', scene.data, '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect((JSON.parse(json.stdout) as DeviceExplanation).scenarios).toHaveLength(6);

    // A device the gateway knows nothing of.
    expect((await explain(base, 'nobody')).status).toBe(404);
    const unknown = await runCli(['explain', 'nobody', '--data', scene.data]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('knows nothing of nobody');

    expect(await gateway.stop()).toBe(0);
    const stopped = await runCli(['explain', 'dev-1', '--data', scene.data]);
    expect(stopped.code).toBe(2);
    expect(stopped.stderr).toContain('no gateway is running on');
  }, 60_000);

  test('a profile read by the contact cap: shared caps are named, without a time this gateway cannot know', async () => {
    const rules = {
      ...RULES,
      'policy.yaml': 'policy:\n  contact:\n    max: 1\n    per: 1h\n    by: profile.household\n',
    };
    const scene = await crashScene({ rules, onCleanup: (c) => cleanups.push(c) });
    const gateway = await startGatewayProcess(scene.args(0));
    cleanups.push(() => gateway.stop());
    const profiles = join(scene.dir, 'profiles.ndjson');
    await writeFile(profiles, '{"id":"tv-1","household":"h1"}\n{"id":"router-1","household":"h1"}\n');
    const imported = await runCli(['profiles', 'import', profiles, '--data', scene.data]);
    expect(imported.code, imported.out).toBe(0);
    const device = await connectDevice(gateway.mqttPort, 'feeder');
    cleanups.push(() => device.endAsync(true));
    await device.publishAsync('devices/router-1/events/promo', '{}', { qos: 1 });
    await device.publishAsync('devices/tv-1/events/promo', '{}', { qos: 1 });
    await waitUntil(() => scene.cloud.actions.length >= 1, 10_000, 'the router offer at the cloud');
    const { body } = await explain(`http://127.0.0.1:${gateway.httpPort}`, 'tv-1');
    const upsell = (body as DeviceExplanation).scenarios.find((s) => s.scenario === 'upsell');
    expect(upsell?.decisions).toMatchObject([
      { verdict: 'suppressed', why: 'suppressed by the contact cap 1 per 1h (shared by profile.household)' },
    ]);
  }, 60_000);
});
