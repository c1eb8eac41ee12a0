import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { makePki } from '../helpers/certs.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { hasMosquitto, MOSQUITTO_MISSING, mosquittoPub } from '../helpers/mosquitto.js';
import { tempDir } from '../helpers/temp.js';

// The acceptance of device security, with Debian's mosquitto clients as the devices and the built CLI
// (`npm run build` first) as the gateway and the operator's tool.
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

if (!hasMosquitto()) console.warn(MOSQUITTO_MISSING);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const vigil = (args: string[], stdin?: string) => run(process.execPath, [CLI, ...args], stdin);

async function started(args: string[]): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess(args);
  cleanups.push(() => gateway.stop());
  return gateway;
}

async function metric(gateway: GatewayProcess, line: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gateway.httpPort}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

/** `vigil devices add ID`: the secret is the last line of its output. */
async function addDevice(data: string, id: string): Promise<string> {
  const r = await vigil(['devices', 'add', id, '--data', data]);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.trimEnd().split('\n');
  return lines[lines.length - 1] ?? '';
}

async function recorded(file: string): Promise<Array<{ actor: string; type: string }>> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { actor: string; type: string });
}

async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!hasMosquitto())(
  'device security, with mosquitto_pub and mosquitto_sub as the devices',
  () => {
    test('credentials: none or wrong is refused, the secret connects; a device cannot act for another', async () => {
      const dir = await tempDir('vigil-acc-');
      cleanups.push(() => dir.remove());
      const data = join(dir.path, 'data');
      const gateway = await started(['--mqtt-port', '0', '--http-port', '0', '--data', data]);
      const port = String(gateway.mqttPort);
      // While the gateway runs, `vigil devices add` goes through its API; the secret never does.
      const secretA = await addDevice(data, 'dev-a');
      const secretB = await addDevice(data, 'dev-b');
      expect(secretA).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{42}$/);

      // Provisioning from elsewhere: a hash, computed from a secret the gateway never sees, with the profile.
      const secretC = 'provisioned-by-the-cloud-0123456789';
      const hash = await vigil(['devices', 'hash'], secretC);
      expect(hash.code).toBe(0);
      const profiles = join(dir.path, 'profiles.ndjson');
      await writeFile(
        profiles,
        ['dev-a', 'dev-b', 'dev-c']
          .map((id) =>
            JSON.stringify({
              id,
              maxTemp: 50,
              site: 'north',
              ...(id === 'dev-c' ? { credential: hash.stdout.trim() } : {}),
            }),
          )
          .join('\n'),
      );
      expect((await vigil(['profiles', 'import', profiles, '--data', data])).code).toBe(0);
      const listed = await vigil(['devices', 'list', '--data', data, '--json']);
      expect(listed.stdout).not.toMatch(/hmac|secret/i);
      expect(
        listed.stdout
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as { id: string }).id),
      ).toEqual(['dev-a', 'dev-b', 'dev-c']);

      const pub = (id: string, password: string | undefined, topic: string, temp = 20) =>
        mosquittoPub([
          '-p',
          port,
          '-i',
          id,
          ...(password === undefined ? [] : ['-u', id, '-P', password]),
          '-q',
          '1',
          '-t',
          topic,
          '-m',
          JSON.stringify({ temp }),
        ]);
      expect(await pub('dev-a', undefined, 'devices/dev-a/events/telemetry')).not.toBe(0);
      expect(await pub('dev-a', 'not-the-secret', 'devices/dev-a/events/telemetry')).not.toBe(0);
      expect(await pub('dev-a', secretB, 'devices/dev-a/events/telemetry')).not.toBe(0);
      expect(await pub('dev-a', secretA, 'devices/dev-a/events/telemetry')).toBe(0);
      expect(await pub('dev-c', secretC, 'devices/dev-c/events/telemetry')).toBe(0);
      expect(await metric(gateway, 'vigil_auth_refusals_total{reason="no-credentials"}')).toBe(1);
      expect(await metric(gateway, 'vigil_auth_refusals_total{reason="wrong-secret"}')).toBe(2);

      // A reports an overheat as B: acknowledged (mosquitto_pub succeeds), refused, counted, nothing decided.
      expect(await pub('dev-a', secretA, 'devices/dev-b/events/telemetry', 99)).toBe(0);
      expect(await metric(gateway, 'vigil_acl_refusals_total{action="publish"}')).toBe(1);

      // A listens on B's commands with mosquitto_sub; B, one connection as a device has, listens on its own
      // and reports an overheat, for which the shipped rules send B a command. Only B receives it.
      const atA = run('mosquitto_sub', [
        '-p',
        port,
        '-i',
        'dev-a',
        '-u',
        'dev-a',
        '-P',
        secretA,
        '-q',
        '1',
        '-t',
        'devices/dev-b/commands/#',
        '-C',
        '1',
        '-W',
        '4',
        '-v',
      ]);
      await until(
        'the refused subscription',
        async () => (await metric(gateway, 'vigil_acl_refusals_total{action="subscribe"}')) === 1,
      );
      const b = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: 'dev-b',
        username: 'dev-b',
        password: secretB,
        reconnectPeriod: 0,
      });
      cleanups.push(() => b.endAsync());
      const atB: string[] = [];
      b.on('message', (topic) => atB.push(topic));
      await b.subscribeAsync('devices/dev-b/commands/#', { qos: 1 });
      await b.publishAsync('devices/dev-b/events/telemetry', JSON.stringify({ temp: 99 }), { qos: 1 });
      const a = await atA;
      await until('the command at B', () => atB.length > 0);
      expect(atB).toEqual(['devices/dev-b/commands/inspect-device']);
      expect(a.stdout).toBe('');
      expect(a.stderr).toMatch(/denied/);
      // One decision: B's own overheat; A's forged one decided nothing.
      expect(await metric(gateway, 'vigil_actions_decided_total{scenario="overheat"}')).toBe(1);
    });

    test('TLS with a CA: a valid client certificate connects as its common name; none, or a foreign one, is refused', async () => {
      const dir = await tempDir('vigil-acc-');
      cleanups.push(() => dir.remove());
      const pki = await makePki(dir.path);
      const record = join(dir.path, 'events.ndjson');
      const gateway = await started([
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
        '--data',
        join(dir.path, 'data'),
        '--record',
        record,
        '--tls-port',
        '0',
        '--tls-cert',
        pki.serverCert,
        '--tls-key',
        pki.serverKey,
        '--tls-ca',
        pki.caCert,
      ]);
      const tlsPort = /mqtts listening on \S+:(\d+)/.exec(gateway.output())?.[1];
      expect(tlsPort).toBeDefined();
      const good = await pki.client('dev-t');
      const rogue = await pki.client('dev-t', { signer: 'rogue' });
      const pubTls = (clientId: string, cert?: { cert: string; key: string }) =>
        mosquittoPub([
          '-p',
          tlsPort ?? '',
          '--cafile',
          pki.caCert,
          ...(cert ? ['--cert', cert.cert, '--key', cert.key] : []),
          '-i',
          clientId,
          '-q',
          '1',
          '-t',
          `devices/${clientId}/events/telemetry`,
          '-m',
          '{"temp":21}',
        ]);

      expect(await pubTls('dev-t', good)).toBe(0);
      expect(await pubTls('dev-t')).not.toBe(0);
      expect(await pubTls('dev-t', rogue)).not.toBe(0);
      expect(await pubTls('dev-x', good)).not.toBe(0); // client id other than the certificate's name
      await until('the event on record', async () =>
        (await recorded(record)).some((e) => e.type === 'telemetry'),
      );
      const telemetry = (await recorded(record)).filter((e) => e.type === 'telemetry');
      expect(telemetry.map((e) => e.actor)).toEqual(['dev-t']);
      expect(await metric(gateway, 'vigil_auth_refusals_total{reason="certificate"}')).toBe(2);
      expect(await metric(gateway, 'vigil_auth_refusals_total{reason="client-id-mismatch"}')).toBe(1);
    });

    test('a device flooding far beyond its rate is throttled and disconnected; the others still flow', async () => {
      const dir = await tempDir('vigil-acc-');
      cleanups.push(() => dir.remove());
      const data = join(dir.path, 'data');
      const config = join(dir.path, 'vigil.yaml');
      await writeFile(config, 'mqtt:\n  publishRate: { perSecond: 50, burst: 50, disconnectAfter: 2s }\n');
      const record = join(dir.path, 'events.ndjson');
      const gateway = await started([
        '--config',
        config,
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
        '--data',
        data,
        '--record',
        record,
      ]);
      const port = String(gateway.mqttPort);
      const flooder = await addDevice(data, 'dev-flood');
      const calm = await addDevice(data, 'dev-calm');

      // mosquitto_pub -l sends a message per input line, as fast as it can: a device gone mad. It is fed
      // until the gateway has disconnected it (it would reconnect and go on) or 15 s pass.
      const flood = spawn(
        'mosquitto_pub',
        [
          '-p',
          port,
          '-i',
          'dev-flood',
          '-u',
          'dev-flood',
          '-P',
          flooder,
          '-q',
          '0',
          '-t',
          'devices/dev-flood/events/telemetry',
          '-l',
        ],
        { stdio: ['pipe', 'ignore', 'ignore'] },
      );
      cleanups.push(() => Promise.resolve(flood.kill()));
      const floodEnded = new Promise<number | null>((resolve) => flood.once('exit', (code) => resolve(code)));
      flood.stdin.on('error', () => undefined);
      const chunk = '{"temp":20}\n'.repeat(1_000);
      let fed = 0;
      let stop = false;
      const feeding = (async () => {
        const deadline = Date.now() + 15_000;
        while (!stop && flood.exitCode === null && Date.now() < deadline) {
          fed += 1_000;
          if (!flood.stdin.write(chunk)) await new Promise((r) => flood.stdin.once('drain', r));
        }
        flood.kill();
      })();
      for (let i = 0; i < 10; i++) {
        expect(
          await mosquittoPub([
            '-p',
            port,
            '-i',
            'dev-calm',
            '-u',
            'dev-calm',
            '-P',
            calm,
            '-q',
            '1',
            '-t',
            'devices/dev-calm/events/telemetry',
            '-m',
            `{"temp":${20 + i}}`,
          ]),
        ).toBe(0);
        await new Promise((r) => setTimeout(r, 100));
      }
      await until(
        'the flooder disconnected',
        async () => (await metric(gateway, 'vigil_mqtt_limit_hits_total{limit="rate-disconnect"}')) >= 1,
      );
      stop = true;
      await feeding;
      await floodEnded;
      await until(
        'the calm events on record',
        async () =>
          (await recorded(record)).filter((e) => e.actor === 'dev-calm' && e.type === 'telemetry').length ===
          10,
      );
      const dropped = await metric(gateway, 'vigil_mqtt_limit_hits_total{limit="publish-rate"}');
      const fromFlood = (await recorded(record)).filter(
        (e) => e.actor === 'dev-flood' && e.type === 'telemetry',
      ).length;
      expect(dropped).toBeGreaterThan(0);
      expect(fromFlood).toBeLessThan(fed - dropped + 1);
      expect(
        await metric(gateway, 'vigil_mqtt_limit_hits_total{limit="rate-disconnect"}'),
      ).toBeGreaterThanOrEqual(1);
    });
  },
);
