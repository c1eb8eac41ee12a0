// The arm64 executable on this x64 host, under Debian's qemu-user-static with an arm64 root unpacked
// from Debian's packages (no binfmt here). Runs when VIGIL_BINARY_TEST=1 (then a missing binary or
// qemu is a failure) or when both are there; `npm test` skips it otherwise.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectAsync } from 'mqtt';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { arm64Sysroot, QEMU_AARCH64 } from '../../build/arm64-sysroot.js';
import { tempDir } from '../helpers/temp.js';

const BINARY = fileURLToPath(new URL('../../build/out/vigil-linux-arm64', import.meta.url));
const REQUIRED = process.env.VIGIL_BINARY_TEST === '1';
const QEMU_MISSING = `${QEMU_AARCH64} is missing: apt-get install -y qemu-user-static`;
// Without VIGIL_BINARY_TEST, a machine that has the binary but not qemu skips this file.
const WANTED = REQUIRED || (existsSync(BINARY) && existsSync(QEMU_AARCH64));
// Emulated, V8 compiles slowly: seconds where native takes milliseconds.
const EMULATED_MS = 90_000;

describe.skipIf(!WANTED)('single executable, linux-arm64 under qemu', () => {
  let sysroot = '';
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  beforeAll(() => {
    if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run \`npm run build:binary\` first`);
    if (!existsSync(QEMU_AARCH64)) throw new Error(QEMU_MISSING);
    sysroot = arm64Sysroot();
  }, EMULATED_MS);

  async function cacheDir(): Promise<string> {
    const dir = await tempDir('vigil-arm64-');
    cleanups.push(() => dir.remove());
    return dir.path;
  }

  test(
    '--version reports linux-arm64 with native LevelDB and CBOR',
    async () => {
      const dir = await cacheDir();
      const r = spawnSync(QEMU_AARCH64, ['-L', sysroot, BINARY, '--version'], {
        cwd: dir,
        env: { PATH: '/usr/bin:/bin', VIGIL_CACHE_DIR: join(dir, 'cache') },
        encoding: 'utf8',
        timeout: EMULATED_MS,
      });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('node v24.21.0 linux-arm64, single executable');
      expect(r.stdout).toContain('leveldb native\n');
      expect(r.stdout).toContain('cbor native\n');
    },
    EMULATED_MS,
  );

  test.each([1, 2])(
    'starts the gateway on its LevelDB with %i thread(s), takes an MQTT connection and stops cleanly on SIGTERM',
    async (threads) => {
      const dir = await cacheDir();
      const child = spawn(
        QEMU_AARCH64,
        [
          ...[
            '-L',
            sysroot,
            BINARY,
            'run',
            '--mqtt-host',
            '127.0.0.1',
            '--mqtt-port',
            '0',
            '--http-port',
            '0',
          ],
          ...['--threads', String(threads)],
        ],
        {
          cwd: dir,
          env: { PATH: '/usr/bin:/bin', VIGIL_ALLOW_ANONYMOUS: 'true' },
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
      const http = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no start under qemu:\n${out}`)),
          EMULATED_MS - 10_000,
        );
        child.stdout.on('data', () => {
          const m = /http listening on \S+:(\d+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`exited with ${code} before it started:\n${out}`));
        });
      });
      const health = (await (await fetch(`http://127.0.0.1:${http}/healthz`)).json()) as { cbor: string };
      expect(health.cbor).toBe('native');
      // The broker answers a CONNECT: with two threads, from the edge thread the executable started.
      const mqttPort = Number(/mqtt listening on \S+:(\d+)/.exec(out)?.[1]);
      const client = await connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
        clientId: 'arm64-probe',
        reconnectPeriod: 0,
        connectTimeout: EMULATED_MS / 3,
      });
      await client.endAsync();
      const names = readdirSync(`/proc/${child.pid ?? 0}/task`).map((t) =>
        readFileSync(`/proc/${child.pid ?? 0}/task/${t}/comm`, 'utf8').trim(),
      );
      if (threads === 2) expect(names).toContain('vigil-edge');
      else expect(names).not.toContain('vigil-edge');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(existsSync(join(dir, 'data', 'CURRENT'))).toBe(true);
    },
    EMULATED_MS,
  );
});
