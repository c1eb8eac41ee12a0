import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { runSim } from '../../firmware-sim/index.js';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import type { Action } from '../../src/shared/index.js';
import {
  createBundle,
  readSigningKey,
  writeKeyPair,
  type BundleFile,
  type RulesStatus,
  type SigningKey,
} from '../../src/sync/index.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A scenario that decides on every telemetry event, not sent anywhere: each decision is one event seen. */
const SEEN = (id: string) => `
id: ${id}
priority: 10
category: audit
when:
  event: telemetry
then:
  action: ${id}
  to: []
  payload:
    ts: 'has(data.ts) ? data.ts : null'
`;
/** A scenario every bundle carries unchanged: its counters carry over a swap and count every event. */
const TALLY = `
id: tally
priority: 10
category: audit
when:
  event: telemetry
  where: data.temp > 1000
then:
  action: never
  to: []
`;
const BROKEN = `
id: broken
priority: 10
category: audit
when:
  event: telemetry
  where: data.temp >
then:
  action: broken
`;

interface Site {
  dir: string;
  cloud: Broker;
  cloudUrl: string;
  signer: SigningKey;
  publicKey: string;
  rulesDir: string;
  actions: Action[];
  statuses: Collector;
  publisher: MqttClient;
}

async function site(): Promise<Site> {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const cloud = await startLocalBroker({ maxPacketBytes: 8 * 1024 * 1024 });
  cleanups.push(() => cloud.close());
  const cloudUrl = `mqtt://127.0.0.1:${cloud.address.port}`;
  const keys = await writeKeyPair(join(tmp.path, 'keys'));
  const rulesDir = join(tmp.path, 'rules');
  await mkdir(rulesDir);
  await writeFile(join(rulesDir, 'seen-old.yaml'), SEEN('seen-old'));
  await writeFile(join(rulesDir, 'tally.yaml'), TALLY);
  const statuses = await Collector.connect(cloudUrl, ['vigil/gw1/rules/status']);
  cleanups.push(() => statuses.close());
  const publisher = await mqtt.connectAsync(cloudUrl, { reconnectPeriod: 0 });
  cleanups.push(() => publisher.endAsync());
  return {
    dir: tmp.path,
    cloud,
    cloudUrl,
    signer: await readSigningKey(keys.privatePath),
    publicKey: keys.publicPath,
    rulesDir,
    actions: [],
    statuses,
    publisher,
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
      sync: { trustedKeys: [s.publicKey] },
      log: { level: 'silent' },
    }),
    { onAction: (action) => s.actions.push(action) },
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

function files(map: Record<string, string>): BundleFile[] {
  return Object.entries(map).map(([path, text]) => ({ path, text }));
}

function bundleOf(signer: SigningKey, version: number, map: Record<string, string>): Buffer {
  return createBundle({ version, createdAt: new Date().toISOString(), files: files(map) }, signer);
}

async function publishBundle(s: Site, bundle: Buffer): Promise<void> {
  await s.publisher.publishAsync('vigil/gw1/rules', bundle, { qos: 1, retain: true });
}

async function nextStatus(s: Site, what: string): Promise<RulesStatus> {
  const seen = s.statuses.messages.length;
  await s.statuses.waitFor((m) => m.length > seen, 10_000, what);
  return JSON.parse(s.statuses.messages[seen]?.payload.toString() ?? '') as RulesStatus;
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Resolves once the gateway's uplink subscription is up, which is when a retained bundle reaches it: an empty
 * profile batch is sent until it is answered (a batch applies once, so sending it again is harmless).
 */
async function subscribed(s: Site): Promise<void> {
  const answers = await Collector.connect(s.cloudUrl, ['vigil/gw1/profiles/status']);
  try {
    const ping = () => void s.publisher.publishAsync('vigil/gw1/profiles', JSON.stringify({ seq: 1 }));
    const resend = setInterval(ping, 100);
    ping();
    try {
      await answers.waitFor((m) => m.length > 0, 10_000, 'the gateway to subscribe');
    } finally {
      clearInterval(resend);
    }
  } finally {
    await answers.close();
  }
}

function evaluations(gateway: Gateway, scenario: string): number {
  return gateway.scenarioStats().find((s) => s.scenario === scenario)?.evaluations ?? 0;
}

describe('rule bundles from the cloud', () => {
  test('untrusted key, flipped byte, older or equal version, invalid rule: each rejected with its reason, and the old rules keep deciding', async () => {
    const s = await site();
    const gateway = await gatewayOf(s);
    await gateway.recovered;
    const current = { 'seen-v5.yaml': SEEN('seen-v5'), 'tally.yaml': TALLY };
    await publishBundle(s, bundleOf(s.signer, 5, current));
    expect(await nextStatus(s, 'v5 applied')).toMatchObject({ version: 5, status: 'applied', running: 5 });

    const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
      clientId: 'd1',
      reconnectPeriod: 0,
    });
    cleanups.push(() => dev.endAsync());
    const decidesWithV5 = async (n: number): Promise<void> => {
      await dev.publishAsync('devices/d1/events/telemetry', JSON.stringify({ temp: 20 + n }), { qos: 1 });
      await until(() => s.actions.length === n, 5_000, `decision ${n}`);
      expect(s.actions.map((a) => a.scenario)).toEqual(Array<string>(n).fill('seen-v5'));
    };
    await decidesWithV5(1);

    const untrusted = await readSigningKey((await writeKeyPair(join(s.dir, 'other'))).privatePath);
    const flipped = bundleOf(s.signer, 9, { 'seen-v9.yaml': SEEN('seen-v9') });
    const at = flipped.indexOf('seen-v9');
    flipped[at] = 'S'.charCodeAt(0);
    const refusals: Array<[Buffer, string]> = [
      [bundleOf(untrusted, 9, { 'seen-v9.yaml': SEEN('seen-v9') }), 'untrusted-key'],
      [flipped, 'bad-signature'],
      [bundleOf(s.signer, 4, { 'seen-v4.yaml': SEEN('seen-v4') }), 'stale-version'],
      [bundleOf(s.signer, 5, { 'seen-v5b.yaml': SEEN('seen-v5b') }), 'stale-version'],
      [bundleOf(s.signer, 9, { ...current, 'broken.yaml': BROKEN }), 'invalid-rules'],
    ];
    for (const [i, [bundle, reason]] of refusals.entries()) {
      await publishBundle(s, bundle);
      const status = await nextStatus(s, reason);
      expect(status).toMatchObject({ gateway: 'gw1', status: 'rejected', reason, running: 5 });
      expect(Date.parse(status.time)).not.toBeNaN();
      await decidesWithV5(i + 2);
    }
    const invalid = JSON.parse(s.statuses.messages.at(-1)?.payload.toString() ?? '') as RulesStatus;
    expect(invalid.problems?.[0]).toMatchObject({ file: 'broken.yaml', line: 7 });
    expect(gateway.sync.rules.running.version).toBe(5);
  });

  test('a bundle applied while devices send 5,000 events/s: each event decided exactly once, by the old rules or the new; a restart comes back with the new rules', async () => {
    const s = await site();
    let gateway = await gatewayOf(s);
    await gateway.recovered;

    const sim = runSim({
      url: `mqtt://127.0.0.1:${gateway.mqtt.port}`,
      devices: 50,
      rate: 5_000,
      durationMs: 3_000,
      qos: 1,
      format: 'json',
      seed: 7,
      lingerMs: 0,
    });
    await until(() => evaluations(gateway, 'tally') >= 3_000, 15_000, 'the load to be under way');
    await publishBundle(s, bundleOf(s.signer, 2, { 'seen-new.yaml': SEEN('seen-new'), 'tally.yaml': TALLY }));
    const applied = await nextStatus(s, 'the bundle applied');
    const summary = await sim;

    const sent = summary.published.telemetry;
    expect(summary.failed).toBe(0);
    expect(summary.acked).toBe(sent);
    await until(() => evaluations(gateway, 'tally') >= sent, 15_000, 'every event to be processed');
    // Counters of the unchanged scenario went on across the swap: each event evaluated once, none lost.
    expect(evaluations(gateway, 'tally')).toBe(sent);
    expect(applied).toMatchObject({
      version: 2,
      status: 'applied',
      scenarios: { kept: ['tally'], added: ['seen-new'], removed: ['seen-old'], changed: [] },
    });

    // Each event decided once: by seen-old before the swap or by seen-new after it, never both, never neither.
    const old = s.actions.filter((a) => a.scenario === 'seen-old');
    const fresh = s.actions.filter((a) => a.scenario === 'seen-new');
    expect(old.length).toBeGreaterThan(0);
    expect(fresh.length).toBeGreaterThan(0);
    expect(old.length + fresh.length).toBe(sent);
    // The simulator stamps each event with its send time: one decision per event, keyed by device and stamp.
    const key = (a: Action) => `${a.actor}@${String(a.payload['ts'])}`;
    expect(new Set(s.actions.map(key)).size).toBe(sent);
    // One swap, between two events: no device has a decision by the old rules after one by the new.
    for (const actor of new Set(s.actions.map((a) => a.actor))) {
      const stamps = (list: Action[]) =>
        list.filter((a) => a.actor === actor).map((a) => Number(a.payload['ts']));
      expect(Math.max(...stamps(old), -1)).toBeLessThan(Math.min(...stamps(fresh), Number.POSITIVE_INFINITY));
    }

    await gateway.stop();
    s.actions.length = 0;
    const before = s.statuses.messages.length;
    gateway = await gatewayOf(s);
    await gateway.recovered;
    expect(gateway.rules.scenarios.map((sc) => sc.id).sort()).toEqual(['seen-new', 'tally']);
    expect(gateway.sync.rules.running).toMatchObject({ source: 'bundle', version: 2 });
    await subscribed(s);
    // The retained bundle came again with the subscription and was ignored quietly: the only status since the
    // restart is version 3's.
    await publishBundle(s, bundleOf(s.signer, 3, { 'seen-v3.yaml': SEEN('seen-v3'), 'tally.yaml': TALLY }));
    expect(await nextStatus(s, 'v3 applied')).toMatchObject({ version: 3, status: 'applied' });
    expect(s.statuses.json<RulesStatus>().slice(before)).toEqual([
      expect.objectContaining({ version: 3, status: 'applied' }),
    ]);
  });

  test('vigil rules apply goes through the running gateway; SIGHUP-style reloads of the directory are refused while a bundle is in force', async () => {
    const s = await site();
    const gateway = await gatewayOf(s);
    await gateway.recovered;
    const { GatewayClient, readGatewayInfo } = await import('../../src/api/index.js');
    const info = await readGatewayInfo(join(s.dir, 'data'));
    if (!info) throw new Error('no gateway.json');
    const client = new GatewayClient(info);

    await writeFile(join(s.rulesDir, 'seen-dir.yaml'), SEEN('seen-dir'));
    expect(await gateway.reloadRules()).toMatchObject({
      status: 'applied',
      source: 'dir',
      scenarios: { added: ['seen-dir'] },
    });
    expect(await nextStatus(s, 'dir reload')).toMatchObject({ source: 'dir', status: 'applied' });

    const bundle = bundleOf(s.signer, 1, { 'seen-local.yaml': SEEN('seen-local') });
    expect(await client.applyBundle(bundle)).toMatchObject({
      status: 'applied',
      source: 'local',
      version: 1,
    });
    expect(await nextStatus(s, 'local apply')).toMatchObject({ source: 'local', version: 1 });
    expect(await client.applyBundle(bundle)).toMatchObject({ status: 'unchanged', version: 1 });
    expect(gateway.rules.scenarios.map((sc) => sc.id)).toEqual(['seen-local']);

    expect(await gateway.reloadRules()).toMatchObject({ status: 'rejected', reason: 'managed-by-bundle' });
    expect(await readFile(join(s.rulesDir, 'seen-dir.yaml'), 'utf8')).toContain('seen-dir');
  });
});
