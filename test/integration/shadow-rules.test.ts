import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { startLocalBroker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import type { ShadowReport } from '../../src/shadow/index.js';
import type { Action } from '../../src/shared/index.js';
import { createBundle, readSigningKey, writeKeyPair, type SigningKey } from '../../src/sync/index.js';
import { hasChromium, launchChromium, watchedPage } from '../helpers/dashboard-fleet.js';
import { Collector, until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const scenario = (id: string, where: string, payload: string, to = '[upstream]') => `
id: ${id}
priority: 50
category: alert
when:
  event: telemetry
  where: ${where}
then:
  action: ${id}-action
  to: ${to}
  payload:
${payload}
`;

/** The live rules: hot above 50 (to the cloud and the device), cold below 0, and a note at exactly 20. */
const LIVE = {
  'hot.yaml': scenario('hot', 'data.temp > 50', '    temp: data.temp', '[upstream, device]'),
  'cold.yaml': scenario('cold', 'data.temp < 0', '    temp: data.temp'),
  'note.yaml': scenario('note', 'data.temp == 20', '    level: \'"low"\''),
};
/** The shadow rules: hot from 40, no cold, the note's payload changed. */
const SHADOW = {
  'hot.yaml': scenario('hot', 'data.temp > 40', '    temp: data.temp', '[upstream, device]'),
  'note.yaml': scenario('note', 'data.temp == 20', '    level: \'"info"\''),
};

interface Site {
  dir: string;
  cloudUrl: string;
  signer: SigningKey;
  publicKey: string;
  rulesDir: string;
  publisher: MqttClient;
  cloud: Collector;
}

async function site(): Promise<Site> {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const broker = await startLocalBroker({ maxPacketBytes: 8 * 1024 * 1024 });
  cleanups.push(() => broker.close());
  const cloudUrl = `mqtt://127.0.0.1:${broker.address.port}`;
  const keys = await writeKeyPair(join(tmp.path, 'keys'));
  const rulesDir = join(tmp.path, 'rules');
  await mkdir(rulesDir);
  for (const [path, text] of Object.entries(LIVE)) await writeFile(join(rulesDir, path), text);
  const cloud = await Collector.connect(cloudUrl, [
    'vigil/gw1/shadow',
    'vigil/gw1/actions',
    'vigil/gw1/rules/status',
  ]);
  cleanups.push(() => cloud.close());
  const publisher = await mqtt.connectAsync(cloudUrl, { reconnectPeriod: 0 });
  cleanups.push(() => publisher.endAsync());
  return {
    dir: tmp.path,
    cloudUrl,
    signer: await readSigningKey(keys.privatePath),
    publicKey: keys.publicPath,
    rulesDir,
    publisher,
    cloud,
  };
}

async function gatewayOf(s: Site): Promise<Gateway> {
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: join(s.dir, 'data'),
      rules: s.rulesDir,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      upstream: { url: s.cloudUrl, reconnect: '200ms' },
      sync: { trustedKeys: [s.publicKey], shadowReport: '200ms' },
      log: { level: 'silent' },
    }),
  );
  let stopped = false;
  cleanups.push(async () => {
    if (!stopped) await gateway.stop();
  });
  const stop = gateway.stop.bind(gateway);
  return Object.assign(gateway, {
    stop: async () => {
      stopped = true;
      await stop();
    },
  });
}

function bundleOf(s: Site, version: number, map: Record<string, string>): Buffer {
  const files = Object.entries(map).map(([path, text]) => ({ path, text }));
  return createBundle({ version, createdAt: new Date().toISOString(), files }, s.signer);
}

function reports(s: Site): ShadowReport[] {
  return s.cloud.json<ShadowReport>('vigil/gw1/shadow');
}

function actions(s: Site): Action[] {
  return s.cloud.json<Action | Action[]>('vigil/gw1/actions').flat();
}

async function device(gateway: Gateway, id: string): Promise<{ client: MqttClient; commands: string[] }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
    clientId: id,
    reconnectPeriod: 0,
  });
  cleanups.push(() => client.endAsync());
  const commands: string[] = [];
  client.on('message', (topic) => commands.push(topic));
  await client.subscribeAsync(`devices/${id}/commands/#`, { qos: 1 });
  return { client, commands };
}

async function send(client: MqttClient, id: string, temp: number): Promise<void> {
  await client.publishAsync(`devices/${id}/events/telemetry`, JSON.stringify({ temp }), { qos: 1 });
}

/** The dashboard's shadow panel: one row per scenario, the differences marked. */
async function dashboardShows(gateway: Gateway): Promise<void> {
  const browser = await launchChromium(cleanups);
  const { page, problems } = await watchedPage(browser);
  await page.goto(`http://127.0.0.1:${gateway.http.port}/`);
  await page.locator('#shadow:not([hidden]) #shadow-diff tbody tr').first().waitFor();
  const rows = await Promise.all(
    (await page.locator('#shadow-diff tbody tr').all()).map((tr) => tr.locator('td').allTextContents()),
  );
  expect(rows).toEqual([
    ['cold', '1', '0', '0', '0', '1', '0'],
    ['hot', '1', '2', '1', '1', '0', '0'],
    ['note', '1', '1', '0', '0', '0', '1'],
  ]);
  expect(await page.locator('#shadow-diff td.bad').count()).toBe(3);
  expect(await page.locator('#sh-summary').textContent()).toMatch(
    /^bundle version 2 beside the local rules directory, since .*: 5 inputs, 0 errors$/,
  );
  await page
    .locator('#shadow')
    .screenshot({ path: join(import.meta.dirname, '../artifacts/shadow-panel.png') });
  expect(problems).toEqual([]);
  await page.close();
}

describe('shadow rules', () => {
  test('a shadow bundle decides beside the live rules, sends nothing, reports what differs, and is promoted by the same bundle pushed live', async () => {
    const s = await site();
    const gateway = await gatewayOf(s);
    await gateway.recovered;
    const shadow = bundleOf(s, 2, SHADOW);
    await s.publisher.publishAsync('vigil/gw1/rules/shadow', shadow, { qos: 1, retain: true });
    await s.cloud.waitFor(() => reports(s).some((r) => r.status === 'running'), 10_000, 'the shadow to run');
    expect(reports(s)[0]).toMatchObject({ gateway: 'gw1', status: 'running', version: 2, live: 0 });

    const d = await device(gateway, 'd1');
    for (const temp of [45, 60, -5, 20]) await send(d.client, 'd1', temp);
    const settled = (r: ShadowReport) => r.totals !== undefined && r.totals.live + r.totals.shadow >= 6;
    await s.cloud.waitFor(() => reports(s).some(settled), 10_000, 'the shadow report to count all');
    const report = reports(s).find(settled) as ShadowReport;
    expect(report.scenarios).toEqual({
      hot: { live: 1, shadow: 2, same: 1, newly: 1, noLonger: 0, changed: 0 },
      cold: { live: 1, shadow: 0, same: 0, newly: 0, noLonger: 1, changed: 0 },
      note: { live: 1, shadow: 1, same: 0, newly: 0, noLonger: 0, changed: 1 },
    });
    // The device's `connected` and its four events.
    expect(report).toMatchObject({ inputs: 5, dropped: 0, errors: 0 });
    expect(report.examples).toContainEqual(
      expect.objectContaining({ kind: 'newly', scenario: 'hot', actor: 'd1', shadow: { temp: 45 } }),
    );
    expect(report.examples).toContainEqual(
      expect.objectContaining({ kind: 'changed', live: { level: 'low' }, shadow: { level: 'info' } }),
    );
    // The shadow's actions went nowhere: the cloud and the device have only the live rules' decisions.
    await until('the live actions upstream', () => actions(s).length === 3);
    expect(actions(s).map((a) => [a.scenario, a.payload])).toEqual([
      ['hot', { temp: 60 }],
      ['cold', { temp: -5 }],
      ['note', { level: 'low' }],
    ]);
    expect(d.commands).toEqual(['devices/d1/commands/hot-action']);
    // The HTTP API shows the same report.
    const api = (await (
      await fetch(`http://127.0.0.1:${gateway.http.port}/api/shadow`)
    ).json()) as ShadowReport;
    expect(api).toMatchObject({ status: 'running', version: 2, scenarios: report.scenarios });
    if (hasChromium) await dashboardShows(gateway);

    // Promoted: the same bundle pushed live ends the shadow with a last report, and its rules decide from now on.
    await s.publisher.publishAsync('vigil/gw1/rules', shadow, { qos: 1, retain: true });
    await s.cloud.waitFor(() => reports(s).some((r) => r.status === 'promoted'), 10_000, 'promotion');
    expect(reports(s).find((r) => r.status === 'promoted')).toMatchObject({ version: 2, live: 2 });
    await send(d.client, 'd1', 45);
    await until('the promoted rules to decide', () => actions(s).length === 4);
    expect(actions(s)[3]).toMatchObject({ scenario: 'hot', payload: { temp: 45 } });
    await until('the command of the promoted rules', () => d.commands.length === 2);
    const after = (await (await fetch(`http://127.0.0.1:${gateway.http.port}/api/shadow`)).json()) as object;
    expect(after).toEqual({ status: 'none' });
  });

  test('a shadow starts from the live state, is rejected like a live bundle, and comes back after a restart from the retained bundle with counts from zero', async () => {
    const s = await site();
    const counting = {
      'three.yaml': `
id: three
priority: 50
category: alert
when:
  event: telemetry
  count: 3
  within: 1h
then:
  action: three
  to: [upstream]
`,
      'quiet.yaml': `
id: quiet
priority: 50
category: alert
when:
  absent: any
  for: 3s
then:
  action: quiet
  to: [upstream]
`,
    };
    await writeFile(join(s.rulesDir, 'three.yaml'), counting['three.yaml']);
    await writeFile(join(s.rulesDir, 'quiet.yaml'), counting['quiet.yaml']);
    let gateway = await gatewayOf(s);
    await gateway.recovered;
    const d = await device(gateway, 'd2');
    // Two of three counted live before the shadow starts: a shadow that started empty would not fire on the third.
    await send(d.client, 'd2', 1);
    await send(d.client, 'd2', 2);

    const other = await readSigningKey((await writeKeyPair(join(s.dir, 'other'))).privatePath);
    const untrusted = createBundle(
      {
        version: 3,
        createdAt: new Date().toISOString(),
        files: [{ path: 'a.yaml', text: LIVE['hot.yaml'] }],
      },
      other,
    );
    await s.publisher.publishAsync('vigil/gw1/rules/shadow', untrusted, { qos: 1 });
    await s.cloud.waitFor(() => reports(s).some((r) => r.status === 'rejected'), 10_000, 'the refusal');
    expect(reports(s).find((r) => r.status === 'rejected')).toMatchObject({ reason: 'untrusted-key' });

    await s.publisher.publishAsync('vigil/gw1/rules/shadow', bundleOf(s, 2, { ...SHADOW, ...counting }), {
      qos: 1,
      retain: true,
    });
    await s.cloud.waitFor(() => reports(s).some((r) => r.version === 2), 10_000, 'the shadow to run');
    await send(d.client, 'd2', 3);
    const three = (r: ShadowReport) => r.version === 2 && (r.scenarios?.['three']?.same ?? 0) === 1;
    await s.cloud.waitFor(() => reports(s).some(three), 10_000, 'the third event counted on both sides');
    expect(reports(s).find(three)?.scenarios?.['three']).toEqual({
      live: 1,
      shadow: 1,
      same: 1,
      newly: 0,
      noLonger: 0,
      changed: 0,
    });
    // A silence timer: the shadow's fires on the gateway's time as the live one does, and the two are paired.
    const quiet = (r: ShadowReport) => r.version === 2 && (r.scenarios?.['quiet']?.same ?? 0) >= 1;
    await s.cloud.waitFor(() => reports(s).some(quiet), 20_000, 'the silence decided on both sides');
    expect(reports(s).find(quiet)?.scenarios?.['quiet']).toMatchObject({ newly: 0, noLonger: 0, changed: 0 });

    await gateway.stop();
    const before = reports(s).length;
    gateway = await gatewayOf(s);
    await gateway.recovered;
    await s.cloud.waitFor(
      () =>
        reports(s)
          .slice(before)
          .some((r) => r.status === 'running' && r.version === 2),
      10_000,
      'the shadow from the retained bundle after the restart',
    );
    expect(reports(s).slice(before)[0]).toMatchObject({ inputs: 0, totals: { live: 0, shadow: 0 } });
  });
  test('a parameter file in the bundle sets each site its limit, and a change for one site is shadowed before it goes live', async () => {
    const s = await site();
    const gateway = await gatewayOf(s);
    await gateway.recovered;
    const template = `template: threshold
params:
  limit: { type: number }
when:
  event: telemetry
  where: data.temp > params.limit
`;
    const tempHigh = `id: temp-high
priority: 50
category: alert
use: threshold
with: { limit: 50 }
then:
  action: temp-high
  to: [upstream]
  payload:
    limit: params.limit
`;
    const params = (berlin: number) =>
      `params:\n  site:\n    berlin-1:\n      temp-high: { limit: ${berlin} }\n`;
    const files = (berlin: number) => ({
      'templates/threshold.yaml': template,
      'temp-high.yaml': tempHigh,
      'params.yaml': params(berlin),
    });
    await s.publisher.publishAsync('vigil/gw1/rules', bundleOf(s, 1, files(30)), { qos: 1, retain: true });
    await s.cloud.waitFor(
      (m) => m.some((x) => x.topic === 'vigil/gw1/rules/status'),
      10_000,
      'the live bundle',
    );
    expect(s.cloud.json('vigil/gw1/rules/status')[0]).toMatchObject({ status: 'applied', version: 1 });
    const profiles = await Collector.connect(s.cloudUrl, ['vigil/gw1/profiles/status']);
    cleanups.push(() => profiles.close());
    const batch = {
      seq: 1,
      upsert: [
        { id: 'b1', site: 'berlin-1' },
        { id: 'p1', site: 'paris-2' },
      ],
    };
    await s.publisher.publishAsync('vigil/gw1/profiles', JSON.stringify(batch), { qos: 1 });
    await profiles.waitFor((m) => m.length > 0, 10_000, 'the profiles');

    await s.publisher.publishAsync('vigil/gw1/rules/shadow', bundleOf(s, 2, files(20)), {
      qos: 1,
      retain: true,
    });
    await s.cloud.waitFor(() => reports(s).some((r) => r.status === 'running'), 10_000, 'the shadow to run');
    const berlin = await device(gateway, 'b1');
    const paris = await device(gateway, 'p1');
    await send(berlin.client, 'b1', 25);
    await send(berlin.client, 'b1', 35);
    await send(paris.client, 'p1', 35);
    await send(paris.client, 'p1', 55);

    const counted = (r: ShadowReport) => (r.totals?.live ?? 0) + (r.totals?.shadow ?? 0) >= 5;
    await s.cloud.waitFor(() => reports(s).some(counted), 10_000, 'the shadow report');
    const report = reports(s).find(counted) as ShadowReport;
    // Berlin at 25 fires only with the shadow's limit of 20; at 35 both fire, each with its own limit in the
    // payload; Paris keeps the template's 50 on both sides.
    expect(report.scenarios?.['temp-high']).toEqual({
      live: 2,
      shadow: 3,
      same: 1,
      newly: 1,
      noLonger: 0,
      changed: 1,
    });
    await until('the live actions', () => actions(s).length === 2);
    expect(actions(s).map((a) => [a.actor, a.payload])).toEqual([
      ['b1', { limit: 30 }],
      ['p1', { limit: 50 }],
    ]);
  });
});
