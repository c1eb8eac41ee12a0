import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { addCommand, hashCommand, listCommand, removeCommand } from '../../src/cli/devices-command.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/app/index.js';
import { secretMatches } from '../../src/credentials/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { stdout, stderr, out: () => out, err: () => err };
}

const lastLine = (text: string) => text.trimEnd().split('\n').at(-1) ?? '';

async function dataDir(): Promise<string> {
  const dir = await tempDir('vigil-devices-');
  cleanups.push(() => dir.remove());
  return join(dir.path, 'data');
}

describe('vigil devices, on a data directory no gateway runs on', () => {
  test('add prints the secret alone on the last line; list, rotate and remove work with exit statuses', async () => {
    const data = await dataDir();
    const added = io();
    expect(await addCommand('dev-1', data, added, 'add')).toBe(0);
    const secret = lastLine(added.out());
    expect(secret).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{42}$/);
    expect(
      added
        .out()
        .split('\n')
        .filter((l) => l.includes(secret)),
    ).toEqual([secret]);

    const again = io();
    expect(await addCommand('dev-1', data, again, 'add')).toBe(1);
    expect(again.err()).toContain('already has a credential');
    expect(again.out()).toBe('');

    const listed = io();
    expect(await listCommand(data, listed, true)).toBe(0);
    expect(JSON.parse(listed.out())).toMatchObject({ id: 'dev-1', source: 'cli' });
    expect(listed.out()).not.toContain(secret);

    const rotated = io();
    expect(await addCommand('dev-1', data, rotated, 'rotate')).toBe(0);
    expect(lastLine(rotated.out())).not.toBe(secret);
    expect(await addCommand('dev-2', data, io(), 'rotate')).toBe(1);

    expect(await removeCommand('dev-1', data, io())).toBe(0);
    expect(await removeCommand('dev-1', data, io())).toBe(1);
    const empty = io();
    expect(await listCommand(data, empty, false)).toBe(0);
    expect(empty.out()).toContain('no device has a credential');
    expect(await addCommand('a b', data, io(), 'add')).toBe(1);
  });

  test('hash turns a secret on stdin into a hash that verifies it', async () => {
    const out = io();
    expect(await hashCommand(Readable.from([Buffer.from('a-secret-from-the-cloud\n')]), out)).toBe(0);
    const hash = out.out().trim();
    expect(secretMatches(hash, 'a-secret-from-the-cloud')).toBe(true);
    expect(await hashCommand(Readable.from([Buffer.from('short')]), io())).toBe(1);
  });
});

describe('vigil devices, while a gateway runs on the data directory', () => {
  test('goes through its API with the token from gateway.json; the secret works at once, removal disconnects', async () => {
    const data = await dataDir();
    const gateway = await startGateway(
      parseConfig({
        data,
        mqtt: { host: '127.0.0.1', port: 0 },
        http: { port: 0, token: 'local-api-token-0123456789' },
        log: { level: 'silent' },
      }),
    );
    cleanups.push(() => gateway.stop());
    const marker = join(data, 'gateway.json');
    expect((await stat(marker)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(marker, 'utf8'))).toMatchObject({ token: 'local-api-token-0123456789' });

    const added = io();
    expect(await addCommand('dev-1', data, added, 'add')).toBe(0);
    expect(added.err()).toContain('going through');
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
      clientId: 'dev-1',
      username: 'dev-1',
      password: lastLine(added.out()),
      reconnectPeriod: 0,
    });
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));

    const listed = io();
    expect(await listCommand(data, listed, true)).toBe(0);
    expect(JSON.parse(listed.out())).toMatchObject({ id: 'dev-1' });
    expect(await addCommand('dev-1', data, io(), 'add')).toBe(1);

    expect(await removeCommand('dev-1', data, io())).toBe(0);
    await closed;
    expect(await removeCommand('dev-1', data, io())).toBe(1);

    // A rotation with an overlap, through the API: the old secret still connects, and so does the new one.
    const second = io();
    expect(await addCommand('dev-2', data, second, 'add')).toBe(0);
    const rotated = io();
    expect(await addCommand('dev-2', data, rotated, 'rotate', 3_600_000)).toBe(0);
    for (const password of [lastLine(second.out()), lastLine(rotated.out())]) {
      const again = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
        clientId: 'dev-2',
        username: 'dev-2',
        password,
        reconnectPeriod: 0,
      });
      expect(again.connected).toBe(true);
      await again.endAsync();
    }
  });
});
