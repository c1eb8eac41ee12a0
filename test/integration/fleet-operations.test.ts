import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startLocalBroker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import type { HealthReport } from '../../src/upstream/index.js';
import {
  createBundle,
  createKeyList,
  readSigningKey,
  writeKeyPair,
  type KeyListStatus,
  type RulesStatus,
  type SigningKey,
} from '../../src/sync/index.js';
import { hasMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../helpers/mosquitto.js';
import { Collector, until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SCENARIO = (id: string, where = 'true') => `
id: ${id}
priority: 10
category: audit
when:
  event: telemetry
  where: ${where}
then:
  action: ${id}
  to: []
`;

interface Key {
  signer: SigningKey;
  publicPem: string;
  publicPath: string;
  privatePath: string;
}

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');

/** `vigil keys rotate …`, as an operator runs it; resolves with the signed list it wrote. */
async function rotateWithCli(dir: string, args: string[]): Promise<{ list: Buffer; stdout: string }> {
  const out = join(dir, `list-${Date.now()}.cose`);
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'keys', 'rotate', ...args, '--out', out], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code).toBe(0);
  return { list: await readFile(out), stdout };
}

interface Fleet {
  dir: string;
  cloudUrl: string;
  publisher: MqttClient;
  statuses: Collector;
  keys: Key[];
}

type CloudStart = () => Promise<{ url: string; stop: () => Promise<unknown> }>;

const clouds: Array<{ name: string; start: CloudStart }> = [
  {
    name: 'aedes',
    start: async () => {
      const broker = await startLocalBroker({ maxPacketBytes: 8 * 1024 * 1024 });
      return { url: `mqtt://127.0.0.1:${broker.address.port}`, stop: () => broker.close() };
    },
  },
  ...(hasMosquitto() ? [{ name: 'mosquitto', start: () => startMosquitto() }] : []),
];
if (!hasMosquitto()) console.warn(MOSQUITTO_MISSING);

async function fleet(start: CloudStart): Promise<Fleet> {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const cloud = await start();
  cleanups.push(() => cloud.stop());
  const cloudUrl = cloud.url;
  const keys: Key[] = [];
  for (const name of ['a', 'b']) {
    const pair = await writeKeyPair(join(tmp.path, `key-${name}`));
    keys.push({
      signer: await readSigningKey(pair.privatePath),
      publicPem: await readFile(pair.publicPath, 'utf8'),
      publicPath: pair.publicPath,
      privatePath: pair.privatePath,
    });
  }
  await mkdir(join(tmp.path, 'rules'));
  await writeFile(join(tmp.path, 'rules', 'local.yaml'), SCENARIO('local'));
  const statuses = await Collector.connect(cloudUrl, ['vigil/gw1/rules/status', 'vigil/gw1/keys/status']);
  cleanups.push(() => statuses.close());
  const publisher = await mqtt.connectAsync(cloudUrl, { reconnectPeriod: 0 });
  cleanups.push(() => publisher.endAsync());
  return { dir: tmp.path, cloudUrl, publisher, statuses, keys };
}

async function gatewayOf(f: Fleet, sync: Record<string, unknown> = {}): Promise<Gateway> {
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: join(f.dir, 'data'),
      rules: join(f.dir, 'rules'),
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      upstream: { url: f.cloudUrl, reconnect: '200ms' },
      sync: { trustedKeys: [f.keys[0]?.publicPath ?? ''], ...sync },
      log: { level: 'silent' },
    }),
    { version: '9.8.7-test' },
  );
  let stopped = false;
  cleanups.push(async () => {
    if (!stopped) await gateway.stop();
  });
  await gateway.recovered;
  const stop = gateway.stop.bind(gateway);
  return Object.assign(gateway, {
    stop: async () => {
      stopped = true;
      await stop();
    },
  });
}

function bundle(signer: SigningKey, version: number, scenario: string, where?: string): Buffer {
  const files = [{ path: `${scenario}.yaml`, text: SCENARIO(scenario, where) }];
  return createBundle({ version, createdAt: new Date().toISOString(), files }, signer);
}

async function retain(f: Fleet, topic: string, payload: Buffer): Promise<void> {
  await f.publisher.publishAsync(topic, payload, { qos: 1, retain: true });
}

/** The first status on `topic` about the message of this hash after the `seen` already there. */
async function statusOf<T extends { hash?: string }>(
  f: Fleet,
  topic: string,
  bytes: Buffer,
  seen: number,
): Promise<T> {
  const hash = createHash('sha256').update(bytes).digest('hex');
  const find = () =>
    f.statuses
      .json<T>(topic)
      .slice(seen)
      .find((s) => s.hash === hash);
  await f.statuses.waitFor(() => find() !== undefined, 5_000, `the status of ${hash} on ${topic}`);
  return find()!;
}

function statusesOn(f: Fleet, topic: string): number {
  return f.statuses.messages.filter((m) => m.topic === topic).length;
}

async function applyRules(f: Fleet, topic: string, bytes: Buffer): Promise<RulesStatus> {
  const seen = statusesOn(f, 'vigil/gw1/rules/status');
  await retain(f, topic, bytes);
  return statusOf<RulesStatus>(f, 'vigil/gw1/rules/status', bytes, seen);
}

describe.each(clouds)('fleet operations, $name as the cloud', ({ start }) => {
  test('rules status, online status and the health report are retained: a console that subscribes later sees them', async () => {
    const f = await fleet(start);
    const gateway = await gatewayOf(f, { healthEvery: '200ms' });
    const applied = await applyRules(f, 'vigil/gw1/rules', bundle(f.keys[0]!.signer, 1, 'one'));
    expect(applied).toMatchObject({ status: 'applied', version: 1 });
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
      clientId: 'dev-1',
      reconnectPeriod: 0,
    });
    cleanups.push(() => device.endAsync());
    for (let i = 0; i < 5; i++) {
      await device.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ i }), { qos: 1 });
    }

    // Reports follow one another: a later one sees the device and the events.
    const live = await Collector.connect(f.cloudUrl, ['vigil/gw1/health']);
    cleanups.push(() => live.close());
    await live.waitFor(
      () => live.json<HealthReport>().some((r) => r.devicesConnected === 1 && r.uptimeS >= 0),
      5_000,
      'a health report with the device connected',
    );
    const console = await Collector.connect(f.cloudUrl, [
      'vigil/gw1/status',
      'vigil/gw1/rules/status',
      'vigil/gw1/health',
    ]);
    cleanups.push(() => console.close());
    await console.waitFor(
      (m) => new Set(m.map((x) => x.topic)).size === 3,
      5_000,
      'the three retained topics',
    );
    expect(console.messages.find((m) => m.topic === 'vigil/gw1/status')?.payload.toString()).toBe('online');
    expect(console.json<RulesStatus>('vigil/gw1/rules/status')[0]).toMatchObject({
      status: 'applied',
      version: 1,
      running: 1,
    });
    const report = console.json<HealthReport>('vigil/gw1/health')[0]!;
    expect(report).toMatchObject({
      gateway: 'gw1',
      version: '9.8.7-test',
      rules: { source: 'bundle', version: 1, hash: applied.hash },
      outbox: { depth: 0, oldestAgeS: null },
    });
    expect(report.diskFreeBytes).toBeGreaterThan(0);
    expect(Number.isFinite(report.eventsPerS) && Number.isFinite(report.actionsPerS)).toBe(true);
    // The events are counted in some report's rate.
    await live.waitFor(
      () => live.json<HealthReport>().some((r) => r.eventsPerS > 0),
      5_000,
      'a report counting the events',
    );
    const count = live.messages.length;
    await live.waitFor((m) => m.length >= count + 2, 5_000, 'two more reports');
  }, 30_000);

  test('group bundles: one version sequence, the gateway’s own wins a tie; a restart runs the last good one and refuses a bad one', async () => {
    const f = await fleet(start);
    const signer = f.keys[0]!.signer;
    let gateway = await gatewayOf(f, { groups: ['north', 'eu'] });

    expect(await applyRules(f, 'vigil/groups/north/rules', bundle(signer, 3, 'north3'))).toMatchObject({
      status: 'applied',
      version: 3,
      group: 'north',
    });
    expect(gateway.sync.rules.running).toMatchObject({ source: 'bundle', version: 3, group: 'north' });
    // Lower than the group's: refused.
    expect(await applyRules(f, 'vigil/gw1/rules', bundle(signer, 2, 'own2'))).toMatchObject({
      status: 'rejected',
      reason: 'stale-version',
      version: 2,
    });
    // The same version as the group's: the gateway's own wins.
    expect(await applyRules(f, 'vigil/gw1/rules', bundle(signer, 3, 'own3'))).toMatchObject({
      status: 'applied',
      version: 3,
    });
    expect(gateway.sync.rules.running.group).toBeUndefined();
    expect(gateway.rules.scenarios.map((s) => s.id)).toEqual(['own3']);
    // Another group at the same version does not win it back.
    expect(await applyRules(f, 'vigil/groups/eu/rules', bundle(signer, 3, 'eu3'))).toMatchObject({
      status: 'rejected',
      reason: 'stale-version',
      group: 'eu',
    });
    // A group the gateway is not in is never looked at.
    await retain(f, 'vigil/groups/south/rules', bundle(signer, 99, 'south'));
    // A higher version from a group wins over the gateway's own.
    expect(await applyRules(f, 'vigil/groups/eu/rules', bundle(signer, 4, 'eu4'))).toMatchObject({
      status: 'applied',
      version: 4,
      group: 'eu',
    });
    expect(gateway.rules.scenarios.map((s) => s.id)).toEqual(['eu4']);
    await gateway.stop();

    // While it is away, the group publishes a bundle that does not compile.
    const before = statusesOn(f, 'vigil/gw1/rules/status');
    await retain(f, 'vigil/groups/eu/rules', bundle(signer, 5, 'eu5', 'data.temp >'));
    gateway = await gatewayOf(f, { groups: ['north', 'eu'] });
    expect(gateway.sync.rules.running).toMatchObject({ source: 'bundle', version: 4, group: 'eu' });
    expect(gateway.rules.scenarios.map((s) => s.id)).toEqual(['eu4']);
    await f.statuses.waitFor(
      () =>
        f.statuses
          .json<RulesStatus>('vigil/gw1/rules/status')
          .slice(before)
          .some((s) => s.version === 5),
      5_000,
      'the bad bundle refused',
    );
    const after = f.statuses.json<RulesStatus>('vigil/gw1/rules/status').slice(before);
    expect(after.find((s) => s.version === 5)).toMatchObject({
      status: 'rejected',
      reason: 'invalid-rules',
      group: 'eu',
      running: 4,
    });
    // The older retained bundles met again on the new connection change nothing, and south never came.
    expect(after.filter((s) => s.status === 'applied')).toEqual([]);
    expect(after.some((s) => s.version === 99)).toBe(false);
    expect(gateway.rules.scenarios.map((s) => s.id)).toEqual(['eu4']);
  }, 30_000);

  test('key rotation: a list signed by a trusted key replaces the keys, revoked keys are refused, and it survives a restart', async () => {
    const f = await fleet(start);
    const [a, b] = f.keys as [Key, Key];
    let gateway = await gatewayOf(f);
    const keysStatus = async (list: Buffer): Promise<KeyListStatus> => {
      const seen = statusesOn(f, 'vigil/gw1/keys/status');
      await retain(f, 'vigil/gw1/keys', list);
      return statusOf<KeyListStatus>(f, 'vigil/gw1/keys/status', list, seen);
    };
    const list = (signer: SigningKey, seq: number, keys: Key[], revoked: string[] = []) =>
      createKeyList(
        { seq, createdAt: new Date().toISOString(), keys: keys.map((k) => k.publicPem), revoked },
        signer,
      );

    // B is not trusted yet.
    expect(await applyRules(f, 'vigil/gw1/rules', bundle(b.signer, 1, 'b1'))).toMatchObject({
      status: 'rejected',
      reason: 'untrusted-key',
    });
    // A list signed by a key not trusted is refused.
    expect(await keysStatus(list(b.signer, 1, [a, b]))).toMatchObject({
      status: 'rejected',
      reason: 'untrusted-key',
      trusted: [a.signer.id],
    });
    // Signed by A: A and B trusted (made as an operator would, with the command line).
    const made = await rotateWithCli(f.dir, [
      '--key',
      a.privatePath,
      '--seq',
      '1',
      '--trust',
      a.publicPath,
      '--trust',
      b.publicPath,
    ]);
    expect(made.stdout).toContain(
      `key list 1, trusting ${a.signer.id}, ${b.signer.id}, signed by key ${a.signer.id}`,
    );
    expect(await keysStatus(made.list)).toMatchObject({
      status: 'applied',
      seq: 1,
      trusted: [a.signer.id, b.signer.id],
    });
    expect(await applyRules(f, 'vigil/gw1/rules', bundle(b.signer, 1, 'b1'))).toMatchObject({
      status: 'applied',
    });
    // B rotates A out.
    expect(await keysStatus(list(b.signer, 2, [b], [a.signer.id]))).toMatchObject({
      status: 'applied',
      seq: 2,
      trusted: [b.signer.id],
      revoked: [a.signer.id],
    });
    expect(await applyRules(f, 'vigil/gw1/rules', bundle(a.signer, 2, 'a2'))).toMatchObject({
      status: 'rejected',
      reason: 'untrusted-key',
    });
    // The revoked key cannot sign a list, an old list cannot come back, and a list cannot trust A again.
    expect(await keysStatus(list(a.signer, 3, [a, b]))).toMatchObject({ reason: 'untrusted-key' });
    expect(await keysStatus(list(a.signer, 1, [a, b]))).toMatchObject({ reason: 'untrusted-key' });
    expect(await keysStatus(list(b.signer, 1, [b]))).toMatchObject({ reason: 'stale-seq' });
    expect(await keysStatus(list(b.signer, 3, [a, b]))).toMatchObject({ reason: 'revoked-key' });
    await retain(f, 'vigil/gw1/keys', list(b.signer, 2, [b], [a.signer.id]));
    await gateway.stop();

    // The configuration still names A only; the stored list is what counts, so the bundle B signed still runs.
    gateway = await gatewayOf(f);
    expect(gateway.sync.rules.running).toMatchObject({ source: 'bundle', version: 1 });
    expect(gateway.rules.scenarios.map((s) => s.id)).toEqual(['b1']);
    expect(await applyRules(f, 'vigil/gw1/rules', bundle(a.signer, 3, 'a3'))).toMatchObject({
      reason: 'untrusted-key',
    });
    expect(await applyRules(f, 'vigil/gw1/rules', bundle(b.signer, 3, 'b3'))).toMatchObject({
      status: 'applied',
      version: 3,
    });
    await until('b3 in force', () => gateway.rules.scenarios[0]?.id === 'b3');
  }, 30_000);
});
