// The single executable, built by `npm run build:binary`, on its own: no Node, no node_modules, no
// repository. Runs when VIGIL_BINARY_TEST=1 (then a missing binary is a failure) or when the binary is
// there; `npm test` skips it otherwise, since building it takes a while.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { encode } from 'cbor-x';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  hasMosquitto,
  MOSQUITTO_MISSING,
  mosquittoPub,
  startMosquitto,
  type Mosquitto,
} from '../helpers/mosquitto.js';
import { readAssetFromFile } from '../../build/sea/blob-file.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const BINARY = fileURLToPath(new URL('../../build/out/vigil-linux-x64', import.meta.url));
const REQUIRED = process.env.VIGIL_BINARY_TEST === '1';
const WANTED = REQUIRED || existsSync(BINARY);
/** What `env -i PATH=/usr/bin:/bin` leaves. */
const BARE_ENV = { PATH: '/usr/bin:/bin' };

interface Started {
  readonly child: ChildProcess;
  readonly mqttPort: number;
  readonly httpPort: number;
  output(): string;
  exited: Promise<number | null>;
}

describe.skipIf(!WANTED || process.arch !== 'x64')('single executable, linux-x64', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  beforeAll(() => {
    if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run \`npm run build:binary\` first`);
    if (!hasMosquitto()) {
      if (REQUIRED) throw new Error(MOSQUITTO_MISSING);
      console.warn(MOSQUITTO_MISSING);
    }
  });

  /** The binary copied alone into a fresh empty directory. */
  async function emptyDirWithBinary(): Promise<string> {
    const dir = await tempDir('vigil-binary-');
    cleanups.push(() => dir.remove());
    copyFileSync(BINARY, join(dir.path, 'vigil'));
    spawnSync('chmod', ['755', join(dir.path, 'vigil')]);
    expect(readdirSync(dir.path)).toEqual(['vigil']);
    return dir.path;
  }

  /** The code cache a start wrote to `cache`, once it is there (10 s at most). */
  async function codeCacheIn(cache: string): Promise<string> {
    for (let i = 0; i < 200; i++) {
      const file = readdirSync(cache).find((f) => /^code-[0-9a-f]{16}\.bin$/.test(f));
      if (file !== undefined) return join(cache, file);
      await sleep(50);
    }
    throw new Error(`no code cache in ${cache}: ${readdirSync(cache).join(', ')}`);
  }

  /** Starts the binary, waits for its code cache in `cache` and its recovery, then stops it cleanly. */
  async function startUntilCodeCache(dir: string, args: string[], cache: string): Promise<void> {
    await startUntilRecovered(dir, args, () => codeCacheIn(cache));
  }

  /** Starts the binary, waits for `meanwhile` and its recovery, then stops it cleanly; resolves to its output. */
  async function startUntilRecovered(
    dir: string,
    args: string[],
    meanwhile: () => Promise<unknown> = () => Promise.resolve(),
  ): Promise<string> {
    const gw = await startBinary(dir, args);
    await meanwhile();
    // The code cache is written once recovered, as the last thing of the start: the gateway has then logged it.
    for (let i = 0; i < 200 && !gw.output().includes('state recovered'); i++) await sleep(50);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    return gw.output();
  }

  async function startBinary(dir: string, args: string[]): Promise<Started> {
    const child = spawn(
      './vigil',
      ['run', '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0', ...args],
      {
        cwd: dir,
        env: BARE_ENV,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    });
    const ports = await new Promise<{ mqtt: number; http: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the binary did not start in 20 s:\n${out}`)), 20_000);
      child.stdout.on('data', () => {
        const mqtt = /mqtt listening on \S+:(\d+)/.exec(out);
        const http = /http listening on \S+:(\d+)/.exec(out);
        if (mqtt && http) {
          clearTimeout(timer);
          resolve({ mqtt: Number(mqtt[1]), http: Number(http[1]) });
        }
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`the binary exited with ${code} before it started:\n${out}`));
      });
    });
    return { child, mqttPort: ports.mqtt, httpPort: ports.http, output: () => out, exited };
  }

  test.skipIf(!hasMosquitto() && !REQUIRED)(
    'runs alone from an empty directory: a CBOR event from mosquitto_pub becomes an action at the cloud',
    async () => {
      const dir = await emptyDirWithBinary();
      const cloud: Mosquitto = await startMosquitto();
      cleanups.push(() => cloud.stop());
      const actions = await Collector.connect(cloud.url, ['vigil/+/actions']);
      cleanups.push(() => actions.close());

      // The device's credential, made the way an installer does, before the gateway first starts.
      const added = spawnSync('./vigil', ['devices', 'add', 'meter-7'], {
        cwd: dir,
        env: BARE_ENV,
        encoding: 'utf8',
      });
      expect(added.status, added.stderr).toBe(0);
      const secret = added.stdout.trim().split('\n').pop() ?? '';

      const gw = await startBinary(dir, ['--upstream', cloud.url]);
      const health = (await (await fetch(`http://127.0.0.1:${gw.httpPort}/healthz`)).json()) as {
        cbor: string;
      };
      expect(health.cbor).toBe('native');

      // The device: Debian's mosquitto_pub, a CBOR payload that the shipped low-battery rule matches.
      const payload = join(dir, 'reading.cbor');
      writeFileSync(payload, encode({ bat: 3.1 }));
      const code = await mosquittoPub([
        ...['-h', '127.0.0.1', '-p', String(gw.mqttPort), '-q', '1'],
        ...['-i', 'meter-7', '-u', 'meter-7', '-P', secret],
        ...['-t', 'devices/meter-7/events/telemetry', '-f', payload],
      ]);
      expect(code).toBe(0);
      await actions.waitFor((m) => m.length > 0, 10_000, 'the action at the cloud');
      expect(actions.json('vigil/vigil/actions')).toMatchObject([
        { scenario: 'low-battery', actor: 'meter-7', gateway: 'vigil', payload: { bat: 3.1 } },
      ]);

      // The shipped dashboard page is served from the executable's own files.
      const page = await fetch(`http://127.0.0.1:${gw.httpPort}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<html');

      gw.child.kill('SIGTERM');
      expect(await gw.exited).toBe(0);
      // Everything it wrote is under ./data, next to the binary.
      expect(readdirSync(dir).sort()).toEqual(['data', 'reading.cbor', 'vigil']);
    },
  );

  test.skipIf(!hasMosquitto() && !REQUIRED)(
    'runs with --threads 2: the edge thread starts from the files the executable writes out, and an event becomes an action',
    async () => {
      const dir = await emptyDirWithBinary();
      const cloud: Mosquitto = await startMosquitto();
      cleanups.push(() => cloud.stop());
      const actions = await Collector.connect(cloud.url, ['vigil/+/actions']);
      cleanups.push(() => actions.close());
      const added = spawnSync('./vigil', ['devices', 'add', 'meter-8'], {
        cwd: dir,
        env: BARE_ENV,
        encoding: 'utf8',
      });
      expect(added.status, added.stderr).toBe(0);
      const secret = added.stdout.trim().split('\n').pop() ?? '';

      const gw = await startBinary(dir, ['--upstream', cloud.url, '--threads', '2']);
      const pid = gw.child.pid ?? 0;
      const threads = readdirSync(`/proc/${pid}/task`).map((t) =>
        readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim(),
      );
      expect(threads).toContain('vigil-edge');

      const payload = join(dir, 'reading.cbor');
      writeFileSync(payload, encode({ bat: 3.2 }));
      const code = await mosquittoPub([
        ...['-h', '127.0.0.1', '-p', String(gw.mqttPort), '-q', '1'],
        ...['-i', 'meter-8', '-u', 'meter-8', '-P', secret],
        ...['-t', 'devices/meter-8/events/telemetry', '-f', payload],
      ]);
      expect(code).toBe(0);
      await actions.waitFor((m) => m.length > 0, 10_000, 'the action at the cloud');
      expect(actions.json('vigil/vigil/actions')).toMatchObject([
        { scenario: 'low-battery', actor: 'meter-8', gateway: 'vigil', payload: { bat: 3.2 } },
      ]);

      gw.child.kill('SIGTERM');
      expect(await gw.exited).toBe(0);
      expect(readdirSync(dir).sort()).toEqual(['data', 'reading.cbor', 'vigil']);
    },
  );

  test('--version reports the build, Node 24 and native LevelDB and CBOR', async () => {
    const dir = await emptyDirWithBinary();
    const r = spawnSync('./vigil', ['--version'], {
      cwd: dir,
      env: { ...BARE_ENV, VIGIL_CACHE_DIR: join(dir, 'cache') },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    const version = (
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      }
    ).version;
    expect(r.stdout).toMatch(
      new RegExp(`^vigil ${version.replaceAll('.', '\\.')} \\(commit [0-9a-f]{12}(-dirty)?\\)\n`),
    );
    expect(r.stdout).toContain('node v24.21.0 linux-x64, single executable (--max-semi-space-size=8)\n');
    expect(r.stdout).toContain('leveldb native\n');
    expect(r.stdout).toContain('cbor native\n');
  });

  test('a started gateway keeps its compiled code for the next start; a damaged copy is made again', async () => {
    const dir = await emptyDirWithBinary();
    const cache = join(dir, 'data', '.cache');
    const codeCache = () => codeCacheIn(cache);
    const startAndStop = () => startUntilCodeCache(dir, [], cache);

    await startAndStop();
    const file = await codeCache();
    const first = readFileSync(file);
    expect(first.length).toBeGreaterThan(100_000);
    expect(statSync(file).mode & 0o077).toBe(0);

    // Used as it is: not written again.
    const written = statSync(file).mtimeMs;
    await startAndStop();
    expect(statSync(file).mtimeMs).toBe(written);

    // A damaged one is not used (its checksum fails); the gateway starts all the same and keeps a good one again.
    writeFileSync(file, Buffer.alloc(first.length, 0x5a));
    await startAndStop();
    for (let i = 0; i < 200 && readFileSync(file)[0] === 0x5a; i++) await sleep(50);
    expect(readFileSync(file)[0]).not.toBe(0x5a);
  });

  test('with the data directory named only in the config file, the compiled code is kept and used there', async () => {
    const dir = await emptyDirWithBinary();
    writeFileSync(join(dir, 'vigil.yaml'), 'gatewayId: site-42\ndata: ./site # the state\n');
    const cache = join(dir, 'site', '.cache');
    const startAndStop = () => startUntilCodeCache(dir, ['--config', 'vigil.yaml'], cache);
    await startAndStop();
    const file = await codeCacheIn(cache);
    const written = statSync(file).mtimeMs;
    await startAndStop();
    expect(statSync(file).mtimeMs).toBe(written);
  });

  test('the configuration validated at a start is used by the next with the same input; a change is validated', async () => {
    const dir = await emptyDirWithBinary();
    const config = join(dir, 'vigil.yaml');
    const kept = join(dir, 'data', '.cache', 'config.bin');
    const startAndStop = () => startUntilRecovered(dir, ['--config', 'vigil.yaml']);
    writeFileSync(config, 'gatewayId: site-1\n');
    expect(await startAndStop()).toContain('"gateway":"site-1"');
    expect(statSync(kept).mode & 0o077).toBe(0);
    const written = statSync(kept).mtimeMs;

    // Taken from the cache: not written again (a miss validates and writes it).
    expect(await startAndStop()).toContain('"gateway":"site-1"');
    expect(statSync(kept).mtimeMs).toBe(written);

    writeFileSync(config, 'gatewayId: site-2\n');
    expect(await startAndStop()).toContain('"gateway":"site-2"');
    expect(statSync(kept).mtimeMs).not.toBe(written);
    // A flag is part of the input as much as the file.
    expect(await startUntilRecovered(dir, ['--config', 'vigil.yaml', '--gateway-id', 'site-3'])).toContain(
      '"gateway":"site-3"',
    );

    // An invalid configuration is refused as before, with the key and what is wrong.
    writeFileSync(config, 'gatewayId: 7\n');
    const refused = spawnSync('./vigil', ['run', '--config', 'vigil.yaml'], { cwd: dir, env: BARE_ENV });
    expect(refused.status).toBe(2);
    expect(refused.stderr.toString()).toContain('gatewayId: Invalid input: expected string, received number');
  });

  test("the bundle's source is found in the executable's file, where the loader reads it without mapping it", () => {
    const asset = readFileSync(new URL('../../build/out/.work/x64/app-script.js', import.meta.url));
    const mapped = asset.buffer.slice(asset.byteOffset, asset.byteOffset + asset.length);
    expect(readAssetFromFile(mapped, BINARY)?.equals(asset)).toBe(true);
    // Not the same asset: no answer, and the loader reads it through the mapping.
    const other = Buffer.from(asset);
    other.writeUInt8(other.readUInt8(other.length - 1) ^ 1, other.length - 1);
    expect(
      readAssetFromFile(other.buffer.slice(other.byteOffset, other.byteOffset + other.length), BINARY),
    ).toBe(undefined);
    expect(readAssetFromFile(mapped, fileURLToPath(import.meta.url))).toBeUndefined();
  });

  test('an addon altered in the cache is detected and written again before it is loaded', async () => {
    const dir = await emptyDirWithBinary();
    const cache = join(dir, 'cache');
    const env = { ...BARE_ENV, VIGIL_CACHE_DIR: cache };
    expect(spawnSync('./vigil', ['--version'], { cwd: dir, env }).status).toBe(0);
    const native = join(cache, 'native');
    const cbor = readdirSync(native).find((f) => f.startsWith('cbor-extract-'));
    if (cbor === undefined) throw new Error(`no cbor-extract addon in ${native}`);
    const original = readFileSync(join(native, cbor));
    writeFileSync(join(native, cbor), Buffer.alloc(original.length, 0x90));

    const r = spawnSync('./vigil', ['--version'], { cwd: dir, env, encoding: 'utf8' });
    expect(r.stdout).toContain('cbor native\n');
    expect(readFileSync(join(native, cbor)).equals(original)).toBe(true);
  });
});
