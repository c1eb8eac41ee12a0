import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import type { Action } from '../../src/shared/index.js';
import { AuditLog, openStore, type AuditEntry } from '../../src/store/index.js';
import { tempDir } from '../helpers/temp.js';

/** `vigil actions log` (the built CLI: `npm run build` first), on a closed data directory and through a running gateway. */
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const RULES = fileURLToPath(new URL('../fixtures/rules/arbitration', import.meta.url));
const HOUR = 3_600_000;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function vigil(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

const lines = (text: string): string[] => text.trimEnd().split('\n').filter(Boolean);

async function until(what: string, predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('vigil actions log on a data directory no gateway has open', () => {
  test('prints decisions newest first, one line each, filtered by actor and suppression, or as JSON', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const store = await openStore(dir.path);
    const log = await AuditLog.open(store.sublevels.audit);
    const entry = (n: number, over: Partial<AuditEntry>): AuditEntry => ({
      at: Date.UTC(2025, 5, 1, 10, n),
      id: `id-${n}`,
      scenario: 'upgrade-offer',
      actor: 'd1',
      category: 'offer',
      priority: 30,
      ...over,
    });
    log.append(entry(0, { scenario: 'support-callback', category: 'support', priority: 90 }));
    log.append(entry(10, { reason: 'exclusive:support' }));
    log.append(entry(11, { actor: 'd2' }));
    log.append(entry(30, { scenario: 'site-outage', group: 'north', category: 'notice', reason: 'contact' }));
    await log.close();
    await store.close();

    const all = await vigil('actions', 'log', '--data', dir.path);
    expect(all.code).toBe(0);
    expect(lines(all.stdout)).toEqual([
      '2025-06-01T10:30:00.000Z  suppressed contact  site-outage  actor=d1 group=north category=notice priority=30 id=id-30',
      '2025-06-01T10:11:00.000Z  sent  upgrade-offer  actor=d2 category=offer priority=30 id=id-11',
      '2025-06-01T10:10:00.000Z  suppressed exclusive:support  upgrade-offer  actor=d1 category=offer priority=30 id=id-10',
      '2025-06-01T10:00:00.000Z  sent  support-callback  actor=d1 category=support priority=90 id=id-0',
    ]);

    const suppressed = await vigil(
      'actions',
      'log',
      '--data',
      dir.path,
      '--actor',
      'd1',
      '--suppressed',
      '--limit',
      '1',
    );
    expect(lines(suppressed.stdout)).toHaveLength(1);
    expect(suppressed.stdout).toContain('suppressed contact  site-outage');

    const json = await vigil('actions', 'log', '--data', dir.path, '--actor', 'd2', '--json');
    expect(lines(json.stdout).map((l) => JSON.parse(l) as unknown)).toEqual([
      {
        at: Date.UTC(2025, 5, 1, 10, 11),
        id: 'id-11',
        scenario: 'upgrade-offer',
        actor: 'd2',
        category: 'offer',
        priority: 30,
      },
    ]);

    const none = await vigil('actions', 'log', '--data', dir.path, '--actor', 'd9');
    expect(none).toMatchObject({ code: 0, stdout: '' });
    expect(none.stderr).toContain('no decisions for "d9"');
  });

  test('a directory without data, or a bad limit, is an error that says so', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const missing = await vigil('actions', 'log', '--data', dir.path);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`there is no Vigil data in ${dir.path}`);
    expect(await readdir(dir.path)).toEqual([]);

    const bad = await vigil('actions', 'log', '--data', dir.path, '--limit', '0');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('expected a whole number from 1 to 100000');
  });
});

describe('vigil actions log while the gateway runs', () => {
  test('suppressions, and an offer dropped for its ttl after an outage, are counted, logged and listed', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const probe = await startLocalBroker();
    const cloudPort = probe.address.port;
    await probe.close(); // the cloud is down

    let now = Date.UTC(2025, 5, 1, 8, 0);
    const gateway: Gateway = await startGateway(
      parseConfig({
        gatewayId: 'gw1',
        data: dir.path,
        rules: RULES,
        // Authentication is not what this test is about: devices connect anonymously.
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
        http: { port: 0 },
        upstream: { url: `mqtt://127.0.0.1:${cloudPort}`, reconnect: '100ms' },
        log: { level: 'silent' },
      }),
      { clock: { now: () => now } },
    );
    cleanups.push(() => gateway.stop());

    const publish = async (device: string, type: string, data: Record<string, unknown>) => {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
        clientId: device,
        reconnectPeriod: 0,
      });
      await client.publishAsync(`devices/${device}/events/${type}`, JSON.stringify(data), { qos: 1 });
      await client.endAsync();
    };
    await publish('d1', 'ticket', { ticket: 'T-1' }); // support, sent
    await publish('d1', 'ticket', { ticket: 'T-2' }); // cooldown
    await publish('d1', 'browse', { page: 'plans' }); // exclusive:support
    await publish('d3', 'browse', { page: 'plans' }); // an offer, sent to the outbox
    await until('two actions in the outbox', () => gateway.store.outbox.size === 2);

    // An hour later the cloud is back: the offer waited too long, the support action still goes.
    now += HOUR;
    const cloud: Broker = await startLocalBroker({ port: cloudPort });
    cleanups.push(() => cloud.close());
    const received: Action[] = [];
    await cloud.subscribe('vigil/gw1/actions', (_t, payload) =>
      received.push(JSON.parse(payload.toString()) as Action),
    );
    await until('the outbox to drain', () => gateway.store.outbox.size === 0);
    await until('the support action at the cloud', () => received.length === 1);
    expect(received.map((a) => [a.scenario, a.actor])).toEqual([['support-callback', 'd1']]);

    const metric = await gateway.metrics.registry.getSingleMetricAsString('vigil_actions_suppressed_total');
    expect(metric).toMatch(/scenario="upgrade-offer",reason="ttl"} 1/);
    expect(metric).toMatch(/scenario="support-callback",reason="cooldown"} 1/);
    expect(metric).toMatch(/scenario="upgrade-offer",reason="exclusive:support"} 1/);

    // The gateway holds the LevelDB lock: the command reads through its HTTP API.
    const run = await vigil('actions', 'log', '--data', dir.path, '--suppressed');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const outcomes = lines(run.stdout).map((l) =>
      /^\S+ {2}suppressed (\S+) {2}(\S+) {2}actor=(\S+) /.exec(l)?.slice(1),
    );
    expect(outcomes).toEqual([
      ['ttl', 'upgrade-offer', 'd3'],
      ['exclusive:support', 'upgrade-offer', 'd1'],
      ['cooldown', 'support-callback', 'd1'],
    ]);
    expect(lines(run.stdout)[0]).toMatch(/^2025-06-01T09:00:00\.\d{3}Z {2}suppressed ttl/);

    const d1 = await vigil('actions', 'log', '--data', dir.path, '--actor', 'd1');
    expect(lines(d1.stdout).map((l) => l.split('  ')[1])).toEqual([
      'suppressed exclusive:support',
      'suppressed cooldown',
      'sent',
    ]);
  });
});
