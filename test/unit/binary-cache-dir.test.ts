import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { cacheDirCandidates, optionValue } from '../../build/sea/cache-dir.js';
import { dataFromConfig } from '../../build/sea/config-data.js';
import { tempDir } from '../helpers/temp.js';

// Where the single executable writes its native addons and shipped files, for each way of starting it.
describe('cache folders of the single executable', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });
  const tmp = join(tmpdir(), 'vigil-cache-1000');
  const base = { env: {}, cwd: '/srv/gw', uid: 1000 };

  test('`run` uses the data directory first, from the flag, VIGIL_DATA, or ./data', () => {
    expect(cacheDirCandidates({ ...base, args: ['run', '--data', '/var/lib/vigil'] })).toEqual([
      '/var/lib/vigil/.cache',
      tmp,
    ]);
    expect(cacheDirCandidates({ ...base, args: ['run', '--mqtt-port', '0', '--data=d2'] })[0]).toBe(
      '/srv/gw/d2/.cache',
    );
    expect(cacheDirCandidates({ ...base, args: ['run'], env: { VIGIL_DATA: '/data' } })[0]).toBe(
      '/data/.cache',
    );
    expect(cacheDirCandidates({ ...base, args: ['run'] })[0]).toBe('/srv/gw/data/.cache');
    // The flag wins over the environment, as it does for the gateway's own config.
    expect(cacheDirCandidates({ ...base, args: ['run', '--data', '/a'], env: { VIGIL_DATA: '/b' } })[0]).toBe(
      '/a/.cache',
    );
  });

  test('`run --config FILE` takes the data directory from the file when nothing overrides it', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    await writeFile(join(dir.path, 'vigil.yaml'), 'data: /var/lib/from-config\nmqtt: { port: 1884 }\n');
    const args = ['run', '-c', join(dir.path, 'vigil.yaml')];
    const withConfig = { ...base, configData: dataFromConfig };
    expect(cacheDirCandidates({ ...withConfig, args })[0]).toBe('/var/lib/from-config/.cache');
    expect(cacheDirCandidates({ ...withConfig, args: ['run', '--config', 'missing.yaml'] })[0]).toBe(
      '/srv/gw/data/.cache',
    );
    // Without `configData`, a data directory only a config file names is left out.
    expect(cacheDirCandidates({ ...base, args })).toEqual([tmp]);
    expect(cacheDirCandidates({ ...base, args: [...args, '--data', '/d'] })[0]).toBe('/d/.cache');
  });

  test('other commands use a data directory only once it holds Vigil data, unless they create it', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'data');
    const at = (args: string[]) => cacheDirCandidates({ ...base, cwd: dir.path, args });
    expect(at(['profiles', 'get', 'd1', '--data', data])).toEqual([tmp]);
    expect(at(['devices', 'add', 'd1', '--data', data])).toEqual([join(data, '.cache'), tmp]);
    expect(at(['profiles', 'import', 'p.ndjson'])).toEqual([join(data, '.cache'), tmp]);
    // A folder that happens to be called data is not Vigil's: --version must not write into it.
    await mkdir(data);
    expect(at(['--version'])).toEqual([tmp]);
    await writeFile(join(data, 'CURRENT'), 'MANIFEST-000002\n');
    expect(at(['profiles', 'get', 'd1', '--data', data])).toEqual([join(data, '.cache'), tmp]);
    expect(at(['--version'])).toEqual([join(data, '.cache'), tmp]);
  });

  test('other commands use VIGIL_CACHE_DIR, then the user cache, then the temp folder', () => {
    expect(cacheDirCandidates({ ...base, args: ['--version'], env: { HOME: '/home/op' } })).toEqual([
      '/home/op/.cache/vigil',
      tmp,
    ]);
    expect(
      cacheDirCandidates({
        ...base,
        args: ['rules', 'check', 'r'],
        env: { XDG_CACHE_HOME: '/xdg', HOME: '/h' },
      }),
    ).toEqual(['/xdg/vigil', tmp]);
    expect(
      cacheDirCandidates({
        ...base,
        args: ['run', '--data', '/d'],
        env: { VIGIL_CACHE_DIR: 'c', HOME: '/h' },
      }),
    ).toEqual(['/srv/gw/c', '/d/.cache', '/h/.cache/vigil', tmp]);
  });

  test('option values: separate, with =, short and glued; the last one wins; none after --', () => {
    expect(optionValue(['-c', 'a.yaml'], ['--config', '-c'])).toBe('a.yaml');
    expect(optionValue(['-cb.yaml'], ['--config', '-c'])).toBe('b.yaml');
    expect(optionValue(['--config=c.yaml', '--config', 'd.yaml'], ['--config'])).toBe('d.yaml');
    expect(optionValue(['--', '--data', 'x'], ['--data'])).toBeUndefined();
    expect(optionValue(['--database', 'x'], ['--data'])).toBeUndefined();
  });
});
