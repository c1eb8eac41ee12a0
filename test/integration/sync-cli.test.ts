import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/app/index.js';
import { hasMosquitto, mosquittoPub, startMosquitto } from '../helpers/mosquitto.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VIGIL_DATA: '' },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

async function vigil(...args: string[]): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VIGIL_DATA: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

const SEEN = (id: string) =>
  `id: ${id}\npriority: 10\ncategory: audit\nwhen:\n  event: telemetry\nthen:\n  action: ${id}\n  to: []\n`;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe('vigil keygen, rules bundle, rules verify, rules apply', () => {
  test('the cloud-side workflow: a key pair, a signed bundle that verifies, stored on a gateway that starts with it', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const keys = join(tmp.path, 'keys');
    const rules = join(tmp.path, 'rules');
    await mkdir(join(rules, 'templates'), { recursive: true });
    await writeFile(join(rules, 'seen.yaml'), SEEN('seen'));
    await writeFile(join(rules, 'policy.yaml'), 'policy:\n  cooldown: 1m\n');
    const file = join(tmp.path, 'rules-v3.bundle');

    const keygen = await vigil('keygen', '--out', keys);
    expect(keygen.code).toBe(0);
    expect((await stat(join(keys, 'private.pem'))).mode & 0o777).toBe(0o600);
    expect((await vigil('keygen', '--out', keys)).stderr).toMatch(/already holds a key pair/);

    const bundled = await vigil(
      'rules',
      'bundle',
      rules,
      '--key',
      join(keys, 'private.pem'),
      '--version',
      '3',
      '--out',
      file,
    );
    expect(bundled.stderr).toBe('');
    expect(bundled.code).toBe(0);
    expect(bundled.stdout).toMatch(
      /bundle version 3, 2 files, 1 scenarios and a policy, \d+ bytes, signed by key [0-9a-f]{16}/,
    );

    const verified = await vigil('rules', 'verify', file, '--pub', join(keys, 'public.pem'));
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(
      /valid bundle version 3 of .*\n2 files: policy.yaml, seen.yaml\n1 scenarios: seen\n/,
    );

    await vigil('keygen', '--out', join(tmp.path, 'other'));
    const untrusted = await vigil('rules', 'verify', file, '--pub', join(tmp.path, 'other', 'public.pem'));
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/refused \(untrusted-key\)/);

    const data = join(tmp.path, 'data');
    const pub = join(keys, 'public.pem');
    const applied = await vigil('rules', 'apply', file, '--data', data, '--trusted-key', pub);
    expect(applied.stdout).toMatch(/applied bundle version 3/);
    expect(applied.code).toBe(0);
    expect((await vigil('rules', 'apply', file, '--data', data, '--trusted-key', pub)).stdout).toMatch(
      /already the one in force/,
    );
    const older = join(tmp.path, 'rules-v2.bundle');
    await vigil(
      'rules',
      'bundle',
      rules,
      '--key',
      join(keys, 'private.pem'),
      '--version',
      '2',
      '--out',
      older,
    );
    const stale = await vigil('rules', 'apply', older, '--data', data, '--trusted-key', pub);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(
      /rejected \(stale-version\): version 2 is not greater than the running version 3/,
    );

    const gateway = await startGateway(
      parseConfig({
        data,
        mqtt: { host: '127.0.0.1', port: 0 },
        http: { port: 0 },
        sync: { trustedKeys: [pub] },
        log: { level: 'silent' },
      }),
    );
    cleanups.push(() => gateway.stop());
    expect(gateway.rules.scenarios.map((s) => s.id)).toEqual(['seen']);
    expect(gateway.rules.policy?.cooldownMs).toBe(60_000);
    expect(gateway.sync.rules.running).toMatchObject({ source: 'bundle', version: 3 });
  }, 120_000);

  test.skipIf(!hasMosquitto())(
    'a bundle published with mosquitto_pub -r to a Debian mosquitto is applied, as docs/sync.md shows',
    async () => {
      const tmp = await tempDir();
      cleanups.push(() => tmp.remove());
      const cloud = await startMosquitto();
      cleanups.push(() => cloud.stop());
      const rules = join(tmp.path, 'rules');
      await mkdir(rules);
      await writeFile(join(rules, 'seen.yaml'), SEEN('seen'));
      expect((await vigil('keygen', '--out', tmp.path)).code).toBe(0);
      const file = join(tmp.path, 'rules.bundle');
      const bundled = await vigil(
        'rules',
        'bundle',
        rules,
        '--key',
        join(tmp.path, 'private.pem'),
        '--version',
        '1',
        '--out',
        file,
      );
      expect(bundled.code).toBe(0);
      const statuses = await Collector.connect(cloud.url, ['vigil/gw1/rules/status']);
      cleanups.push(() => statuses.close());
      // Published before the gateway runs: retained, it reaches the gateway when it subscribes.
      const port = String(cloud.port);
      expect(
        await mosquittoPub([
          '-h',
          '127.0.0.1',
          '-p',
          port,
          '-t',
          'vigil/gw1/rules',
          '-r',
          '-q',
          '1',
          '-f',
          file,
        ]),
      ).toBe(0);
      const gateway = await startGateway(
        parseConfig({
          gatewayId: 'gw1',
          data: join(tmp.path, 'data'),
          mqtt: { host: '127.0.0.1', port: 0 },
          http: { port: 0 },
          upstream: { url: cloud.url, reconnect: '200ms' },
          sync: { trustedKeys: [join(tmp.path, 'public.pem')] },
          log: { level: 'silent' },
        }),
      );
      cleanups.push(() => gateway.stop());
      await statuses.waitFor((m) => m.length === 1, 10_000, 'the status');
      expect(statuses.json()[0]).toMatchObject({
        gateway: 'gw1',
        version: 1,
        status: 'applied',
        source: 'cloud',
      });
      expect(gateway.rules.scenarios.map((sc) => sc.id)).toEqual(['seen']);
      // Clearing the retained message is no bundle to refuse: the next status is that of version 2.
      expect(await mosquittoPub(['-h', '127.0.0.1', '-p', port, '-t', 'vigil/gw1/rules', '-r', '-n'])).toBe(
        0,
      );
      const v2 = join(tmp.path, 'rules-v2.bundle');
      await writeFile(join(rules, 'seen-too.yaml'), SEEN('seen-too'));
      await vigil(
        'rules',
        'bundle',
        rules,
        '--key',
        join(tmp.path, 'private.pem'),
        '--version',
        '2',
        '--out',
        v2,
      );
      expect(
        await mosquittoPub([
          '-h',
          '127.0.0.1',
          '-p',
          port,
          '-t',
          'vigil/gw1/rules',
          '-r',
          '-q',
          '1',
          '-f',
          v2,
        ]),
      ).toBe(0);
      await statuses.waitFor((m) => m.length >= 2, 10_000, 'the second status');
      expect(statuses.json().map((st) => [st['version'], st['status']])).toEqual([
        [1, 'applied'],
        [2, 'applied'],
      ]);
    },
  );

  test('rules with problems are not bundled: each problem as file:line: message', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    await vigil('keygen', '--out', tmp.path);
    const rules = join(tmp.path, 'rules');
    await mkdir(rules);
    await writeFile(
      join(rules, 'broken.yaml'),
      SEEN('broken').replace('event: telemetry', 'event: telemetry\n  where: data.x >'),
    );
    const out = join(tmp.path, 'x.bundle');
    const run = await vigil(
      'rules',
      'bundle',
      rules,
      '--key',
      join(tmp.path, 'private.pem'),
      '--version',
      '1',
      '--out',
      out,
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${join(rules, 'broken.yaml')}:6:`);
    expect(await exists(out)).toBe(false);
  });

  test('SIGHUP reloads the rules directory of a running gateway', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const rules = join(tmp.path, 'rules');
    await mkdir(rules);
    await writeFile(join(rules, 'seen.yaml'), SEEN('seen'));
    const gw = start([
      'run',
      '--data',
      join(tmp.path, 'data'),
      '--rules',
      rules,
      '--mqtt-host',
      '127.0.0.1',
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--log-level',
      'info',
    ]);
    const exited = once(gw.child, 'exit');
    cleanups.push(async () => {
      if (gw.child.exitCode === null) {
        gw.child.kill('SIGTERM');
        await exited;
      }
    });
    const waitFor = async (pattern: RegExp, what: string) => {
      const deadline = Date.now() + 20_000;
      while (!pattern.test(gw.output())) {
        if (Date.now() > deadline || gw.child.exitCode !== null)
          throw new Error(`no ${what}:\n${gw.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await waitFor(/http listening on \S+:(\d+)/, 'start');
    await waitFor(/"msg":"state recovered"/, 'recovery');
    const port = Number(/http listening on \S+:(\d+)/.exec(gw.output())?.[1]);

    await writeFile(join(rules, 'seen-too.yaml'), SEEN('seen-too'));
    gw.child.kill('SIGHUP');
    await waitFor(/"msg":"rules applied"/, 'the reload');
    const line =
      gw
        .output()
        .split('\n')
        .find((l) => l.includes('"msg":"rules applied"')) ?? '';
    expect(JSON.parse(line)).toMatchObject({ source: 'dir', added: ['seen-too'], kept: 1 });
    const running: unknown = await (await fetch(`http://127.0.0.1:${port}/api/rules`)).json();
    expect(running).toEqual({ source: 'dir', version: 0, floor: 0 });
    expect(await readFile(join(tmp.path, 'data', 'gateway.json'), 'utf8')).toContain(String(port));
    gw.child.kill('SIGTERM');
    expect((await exited)[0]).toBe(0);
  });
});
