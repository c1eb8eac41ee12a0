import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'cbor-x';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { StoreIoError, StoreLockedError } from '../../src/shared/index.js';
import { cborInUse, openStore, SUBLEVEL_NAMES, type Store } from '../../src/store/index.js';

let dir: string;
let store: Store | undefined;
let child: ChildProcess | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-store-'));
});

afterEach(async () => {
  await store?.close();
  store = undefined;
  if (child?.exitCode === null && child.pid !== undefined) {
    const exited = once(child, 'exit');
    process.kill(child.pid);
    await exited;
  }
  child = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('openStore', () => {
  test('creates the directory and keeps values in every sublevel across a reopen', async () => {
    const dataDir = join(dir, 'nested', 'data');
    store = await openStore(dataDir);
    for (const name of SUBLEVEL_NAMES)
      await store.sublevels[name].put('k', { name, n: 1.5, list: [1, 'two'] });
    await store.close();

    store = await openStore(dataDir);
    for (const name of SUBLEVEL_NAMES) {
      await expect(store.sublevels[name].get('k')).resolves.toEqual({ name, n: 1.5, list: [1, 'two'] });
    }
  });

  test('stores values as CBOR', async () => {
    store = await openStore(dir);
    await store.sublevels.state.put('snapshot', { at: 42, timers: ['t1'] });
    const raw = await store.db.get('!state!snapshot', { valueEncoding: 'buffer' });
    expect(raw).toBeInstanceOf(Buffer);
    expect(decode(raw as Buffer)).toEqual({ at: 42, timers: ['t1'] });
  });

  test('a directory held by another process gives StoreLockedError naming the directory', async () => {
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { Level } from 'level'; const db = new Level(process.argv[1]); await db.open(); " +
          "console.log('ready'); setInterval(() => {}, 1000);",
        dir,
      ],
      { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    child = holder;
    const [ready] = (await once(holder.stdout, 'data')) as [Buffer];
    expect(ready.toString()).toContain('ready');

    const err = await openStore(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreLockedError);
    expect((err as StoreLockedError).code).toBe('VIGIL_STORE_LOCKED');
    expect((err as StoreLockedError).message).toContain(dir);
  });

  test('a path that cannot hold a database gives StoreIoError with the cause', async () => {
    const file = join(dir, 'not-a-dir');
    await writeFile(file, 'x');
    const err = await openStore(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreIoError);
    expect((err as StoreIoError).cause).toBeInstanceOf(Error);
  });

  test('a write that fails gives StoreIoError with the cause', async () => {
    store = await openStore(dir);
    await store.db.close();
    const err = await store.profiles.put('dev-1', { site: 'north' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreIoError);
    expect((err as StoreIoError).message).toContain('dev-1');
    expect((err as StoreIoError).cause).toBeInstanceOf(Error);
  });
});

describe('cborInUse', () => {
  test('says native exactly when cbor-extract loads', () => {
    let loads: boolean;
    try {
      createRequire(import.meta.url)('cbor-extract');
      loads = true;
    } catch {
      loads = false;
    }
    expect(cborInUse()).toBe(loads ? 'native' : 'js');
  });

  test('says js when native acceleration is turned off', () => {
    const run = (env: NodeJS.ProcessEnv): string =>
      spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          "import { cborInUse } from './src/store/index.ts'; console.log(cborInUse());",
        ],
        { cwd: process.cwd(), env, encoding: 'utf8' },
      ).stdout.trim();
    expect(run({ ...process.env, CBOR_NATIVE_ACCELERATION_DISABLED: 'true' })).toBe('js');
  });
});
