import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { startProfileApi, type ApiServer } from './profiles-harness.js';

const ENTRY = join(import.meta.dirname, 'profiles-cli-entry.ts');

let dir: string;
let dataDir: string;
let file: string;
let store: Store | undefined;
let api: ApiServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-profiles-cli-'));
  dataDir = join(dir, 'data');
  file = join(dir, 'profiles.ndjson');
});

afterEach(async () => {
  await api?.close();
  api = undefined;
  await store?.close();
  store = undefined;
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function vigil(...args: string[]): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], {
    cwd: process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

const PROFILES = [
  '{"id":"dev-1","maxTemp":50,"site":"north"}',
  '{"id":"dev-2",',
  '{"id":"dev-3","maxTemp":70}',
];

describe('vigil profiles, on a data directory no one else has open', () => {
  test('import reports the bad lines as FILE:LINE, imports the rest, and exits 1; get prints a profile', async () => {
    await writeFile(file, PROFILES.join('\n'));
    const run = await vigil('profiles', 'import', file, '--data', dataDir);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^${file}:2: invalid JSON`, 'm'));
    expect(run.stdout).toContain('imported 2 profiles');
    expect(run.stdout).toContain('rejected 1 line');

    const get = await vigil('profiles', 'get', 'dev-1', '--data', dataDir);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toEqual({ id: 'dev-1', maxTemp: 50, site: 'north' });

    const missing = await vigil('profiles', 'get', 'dev-2', '--data', dataDir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no profile with id "dev-2"');
  });

  test('a profile with a field named like a secret is reported as FILE:LINE with the field, and not stored', async () => {
    await writeFile(file, ['{"id":"dev-1","maxTemp":50}', '{"id":"dev-2","Token":"t0k3n"}'].join('\n'));
    const run = await vigil('profiles', 'import', file, '--data', dataDir);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^${file}:2: field "Token" is named like a secret`, 'm'));
    const get = await vigil('profiles', 'get', 'dev-2', '--data', dataDir);
    expect(get.code).toBe(1);
  });

  test('a clean file exits 0', async () => {
    await writeFile(file, '{"id":"a"}\n{"id":"b"}\n');
    const run = await vigil('profiles', 'import', file, '--data', dataDir);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toContain('imported 2 profiles');
  });

  test('get on a directory without data exits 2 and creates nothing there', async () => {
    const run = await vigil('profiles', 'get', 'dev-1', '--data', dir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`there is no Vigil data in ${dir}`);
    expect(await readdir(dir)).toEqual([]);
  });

  test('a missing file exits 2 and says so', async () => {
    const run = await vigil('profiles', 'import', join(dir, 'nope.ndjson'), '--data', dataDir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('cannot read');
  });
});

describe('vigil profiles, while a gateway has the data directory', () => {
  beforeEach(async () => {
    store = await openStore(dataDir);
  });

  test('import and get go through the gateway API found in gateway.json', async () => {
    api = await startProfileApi(store as Store);
    await writeFile(join(dataDir, 'gateway.json'), JSON.stringify({ pid: process.pid, http: api.url }));
    await writeFile(file, PROFILES.join('\n'));

    const run = await vigil('profiles', 'import', file, '--data', dataDir);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`in use by the running gateway (pid ${process.pid})`);
    expect(run.stderr).toMatch(new RegExp(`^${file}:2: invalid JSON`, 'm'));
    expect(run.stdout).toContain('imported 2 profiles');
    expect(api.hits).toEqual(['POST /api/profiles/import']);
    await expect(store?.profiles.get('dev-3')).resolves.toEqual({ id: 'dev-3', maxTemp: 70 });

    const get = await vigil('profiles', 'get', 'dev-3', '--data', dataDir);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toEqual({ id: 'dev-3', maxTemp: 70 });
    const missing = await vigil('profiles', 'get', 'dev-9', '--data', dataDir);
    expect(missing.code).toBe(1);
    expect(api.hits).toEqual([
      'POST /api/profiles/import',
      'GET /api/profiles/dev-3',
      'GET /api/profiles/dev-9',
    ]);
  });

  test('a gateway.json left by a gateway that is gone: exit 2, saying so and what to do', async () => {
    const gone = spawn(process.execPath, ['-e', '']);
    await once(gone, 'exit');
    await writeFile(
      join(dataDir, 'gateway.json'),
      JSON.stringify({ pid: gone.pid, http: 'http://127.0.0.1:9' }),
    );
    await writeFile(file, PROFILES[0] ?? '');

    const run = await vigil('profiles', 'import', file, '--data', dataDir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`(pid ${gone.pid}) is gone`);
    expect(run.stderr).toContain('fuser -v');
  });

  test('no gateway.json: exit 2, saying another process holds the directory', async () => {
    const run = await vigil('profiles', 'get', 'dev-1', '--data', dataDir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${dataDir} is in use by another process`);
  });
});
