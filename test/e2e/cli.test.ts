import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { runCli } from '../helpers/cli.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { tempDir } from '../helpers/temp.js';

const BROKEN = fileURLToPath(new URL('../fixtures/rules/broken/', import.meta.url));
const SHIPPED = fileURLToPath(new URL('../../rules/', import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('the vigil command line', () => {
  test('SIGTERM stops the gateway cleanly: exit 0, lock released, marker removed', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'data');
    const gateway = await startGatewayProcess(['--mqtt-port', '0', '--http-port', '0', '--data', data]);
    expect(existsSync(join(data, 'gateway.json'))).toBe(true);
    const health = (await (await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`)).json()) as {
      status: string;
    };
    expect(health.status).toBe('ok');
    expect(await gateway.stop()).toBe(0);
    expect(existsSync(join(data, 'gateway.json'))).toBe(false);
    const store = await openStore(data); // the LevelDB lock is free again
    await store.close();
  });

  test('a bad config value stops start-up with a message naming the key and what is allowed', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const config = join(dir.path, 'vigil.yaml');
    await writeFile(config, 'mqtt:\n  port: 99999\nlog:\n  level: loud\n');
    const result = await runCli(['run', '--config', config, '--data', join(dir.path, 'data')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/mqtt\.port: .*65535/);
    expect(result.stderr).toMatch(/log\.level: .*"info"/);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace

    const env = await runCli(['run', '--data', join(dir.path, 'data')], { VIGIL_HTTP_PORT: 'eighty' });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/VIGIL_HTTP_PORT: http\.port must be a number/);
  });

  test('a data directory held by another process stops start-up with the message, then a hint', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'data');
    const holder = await openStore(data);
    cleanups.push(() => holder.close());
    const result = await runCli(['run', '--data', data, '--mqtt-port', '0', '--http-port', '0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `vigil: data directory ${data} is in use by another process\n` +
        'hint: stop the process that holds it (another gateway or vigil command), or give this one another directory with --data\n',
    );
  });

  test('a port another process listens on stops start-up with the setting to change, MQTT or HTTP', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => taken.close(resolve)));
    const port = String((taken.address() as AddressInfo).port);
    const run = (mqtt: string, http: string) =>
      runCli([
        'run',
        '--mqtt-host',
        '127.0.0.1',
        '--mqtt-port',
        mqtt,
        '--http-port',
        http,
        '--data',
        join(dir.path, 'data'),
      ]);

    const mqtt = await run(port, '0');
    expect(mqtt.code).toBe(2);
    expect(mqtt.stderr).toContain(`vigil: mqtt cannot listen on 127.0.0.1:${port}: listen EADDRINUSE`);
    expect(mqtt.stderr).toContain(
      'hint: another process listens there: stop it, or choose another mqtt.port (--mqtt-port)',
    );
    const http = await run('0', port);
    expect(http.code).toBe(2);
    expect(http.stderr).toContain(`vigil: http cannot listen on 127.0.0.1:${port}: listen EADDRINUSE`);
    expect(http.stderr).toContain(
      'hint: another process listens there: stop it, or choose another http.port (--http-port)',
    );
    expect(http.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  test('a rules directory that does not exist stops start-up with what to check, not with a line to fix', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const missing = join(dir.path, 'no-rules');
    const result = await runCli([
      'run',
      '--rules',
      missing,
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--data',
      join(dir.path, 'data'),
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `vigil: ${missing}:0: cannot read the rules directory (ENOENT)\n` +
        'hint: check the directory given with --rules (or `rules:` in the config): it must exist and be readable\n',
    );
  });

  test('rules check: exit 0 on the shipped rules, exit 1 with file:line errors on broken ones', async () => {
    const ok = await runCli(['rules', 'check', SHIPPED]);
    expect(ok.code).toBe(0);
    const broken = await runCli(['rules', 'check', BROKEN]);
    expect(broken.code).toBe(1);
    const lines = broken.stderr.split('\n').filter((l) => /\.yaml:\d+:\d+: /.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(5);
    expect(broken.stderr).toMatch(/bad-duration\.yaml:\d+:\d+: /);
    expect(broken.stderr).toMatch(/bad-cel\.yaml:\d+:\d+: /);
    expect(broken.stderr).not.toMatch(/\n\s+at /);
  });

  test('rules check: one file, with its hints, and --format json for CI', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    await writeFile(join(dir.path, 'schema.yaml'), 'schema:\n  events:\n    telemetry: { temp: number }\n');
    const file = join(dir.path, 'hot.yaml');
    await writeFile(file, 'id: hot\ncooldown: 10\nwhen:\n  event: telemtry\nthen:\n  action: cool\n');
    const text = await runCli(['rules', 'check', file]);
    expect(text.code).toBe(1);
    expect(text.stderr).toBe(
      [
        `${file}:2:11: cooldown: 10 has no unit`,
        '    hint: durations need a unit: 10ms, 10s, 10m, 10h or 10d',
        `${file}:4:10: event: no device or scenario produces "telemtry"`,
        '    hint: did you mean telemetry?',
        `${file}: 2 problems; types checked against ${join(dir.path, 'schema.yaml')}`,
        '',
      ].join('\n'),
    );
    const json = await runCli(['rules', 'check', file, '--format', 'json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      path: file,
      ok: false,
      typesChecked: true,
      problems: [
        { file, line: 2, col: 11, message: 'cooldown: 10 has no unit' },
        { file, line: 4, col: 10, hint: 'did you mean telemetry?' },
      ],
    });
    await writeFile(file, 'id: hot\ncooldown: 10s\nwhen:\n  event: telemetry\nthen:\n  action: cool\n');
    const fixed = await runCli(['rules', 'check', file]);
    expect(fixed).toMatchObject({
      code: 0,
      stderr: expect.stringMatching(/: 1 scenario OK; types checked/) as unknown,
    });
  });

  test('replay prints the decided actions as NDJSON on virtual time', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const events = join(dir.path, 'events.ndjson');
    await writeFile(
      events,
      [
        { actor: 'd1', type: 'telemetry', at: 1_000, data: { temp: 20, bat: 3.1 } },
        { actor: 'd2', type: 'telemetry', at: 2_000, data: { temp: 20, bat: 3.9 } },
      ]
        .map((e) => JSON.stringify(e))
        .join('\n') + '\n',
    );
    // The shipped rules read profiles: refused without them, run when told to.
    const refused = await runCli(['replay', events, '--rules', SHIPPED]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('overheat');
    expect(refused.stderr).toContain('--without-profiles');
    const result = await runCli(['replay', events, '--rules', SHIPPED, '--without-profiles']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(
      'replayed 2 events, 1970-01-01T00:00:01.000Z to 1970-01-01T00:00:02.000Z',
    );
    expect(result.stderr).toMatch(/^low-battery +1 +0 +0$/m);
    // overheat reads profile.maxTemp: each telemetry event is an error, with its time, scenario and actor.
    expect(result.stderr).toContain('error 1970-01-01T00:00:01.000Z overheat d1 (where)');
    const out = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { scenario: string; actor: string; eventAt: number });
    // low-battery for d1 at once; both devices fall silent: device-offline 5 minutes after each one's last event.
    expect(out.map((a) => [a.scenario, a.actor, a.eventAt])).toEqual([
      ['low-battery', 'd1', 1_000],
      ['device-offline', 'd1', 301_000],
      ['device-offline', 'd2', 302_000],
    ]);
  });

  test('every command has --help', async () => {
    for (const cmd of [
      [],
      ['run'],
      ['rules', 'check'],
      ['replay'],
      ['backtest'],
      ['explain'],
      ['profiles', 'import'],
      ['profiles', 'get'],
      ['sim'],
      ['demo'],
    ]) {
      const result = await runCli([...cmd, '--help']);
      expect(result.code, cmd.join(' ')).toBe(0);
      expect(result.stdout, cmd.join(' ')).toMatch(/Usage: vigil/);
    }
  });
});
