import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ConfigError } from '../../src/shared/index.js';
import { CONFIG_CACHE_FILE, configCacheIn, type ConfigCache } from '../../src/config/config-cache.js';
import { loadConfig, parseConfig, type Config } from '../../src/config/index.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-config-cache-'));
  await chmod(dir, 0o700);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The cache, counting what reaches it: how many reads found a configuration, how many writes were asked. */
function counted(cache: ConfigCache): ConfigCache & { hits: number; writes: number } {
  const c = {
    hits: 0,
    writes: 0,
    read: (raw: unknown): Config | undefined => {
      const found = cache.read(raw);
      if (found !== undefined) c.hits++;
      return found;
    },
    write: (raw: unknown, config: Config): void => {
      c.writes++;
      cache.write(raw, config);
    },
  };
  return c;
}

describe('the validated configuration kept between starts', () => {
  test('the same input gives what validating gives, without validating again', async () => {
    const file = join(dir, 'vigil.yaml');
    await writeFile(file, 'gatewayId: site-7\nmqtt:\n  connectTimeout: 2s\nstore:\n  blockCache: 16MiB\n');
    const cache = counted(configCacheIn(dir, 'build-1'));
    const opts = { file, env: { VIGIL_HTTP_PORT: '0' }, overrides: { 'mqtt.port': 0 }, cache: () => cache };
    const first = await loadConfig(opts);
    expect(cache).toMatchObject({ hits: 0, writes: 1 });
    const second = await loadConfig(opts);
    expect(cache).toMatchObject({ hits: 1, writes: 1 });
    expect(second).toEqual(first);
    expect(second.mqtt.connectTimeout).toBe(2_000);
    expect(second.http.port).toBe(0);
    expect(second.store.blockCache).toBe(16 * 1024 * 1024);
    expect(second).toEqual(await loadConfig({ ...opts, cache: undefined }));
  });

  test('a changed file, variable or flag is validated again, and then kept instead', async () => {
    const file = join(dir, 'vigil.yaml');
    await writeFile(file, 'gatewayId: site-7\n');
    const cache = counted(configCacheIn(dir, 'build-1'));
    const load = (env: NodeJS.ProcessEnv, overrides = {}): Promise<Config> =>
      loadConfig({ file, env, overrides, cache: () => cache });
    await load({});
    await writeFile(file, 'gatewayId: site-8\n');
    expect((await load({})).gatewayId).toBe('site-8');
    expect((await load({ VIGIL_GATEWAY_ID: 'site-9' })).gatewayId).toBe('site-9');
    expect((await load({}, { gatewayId: 'site-10' })).gatewayId).toBe('site-10');
    expect(cache).toMatchObject({ hits: 0, writes: 4 });
    expect((await load({}, { gatewayId: 'site-10' })).gatewayId).toBe('site-10');
    expect(cache.hits).toBe(1);
  });

  test('another build validates again', () => {
    const raw = { gatewayId: 'site-7' };
    configCacheIn(dir, 'build-1').write(raw, parseConfig(raw));
    expect(configCacheIn(dir, 'build-1').read(raw)).toEqual(parseConfig(raw));
    expect(configCacheIn(dir, 'build-2').read(raw)).toBeUndefined();
  });

  test('an invalid configuration is reported as before and never kept', async () => {
    const cache = counted(configCacheIn(dir, 'build-1'));
    const load = (): Promise<Config> => loadConfig({ env: { VIGIL_MQTT_PORT: '70000' }, cache: () => cache });
    await expect(load()).rejects.toThrow(ConfigError);
    await expect(load()).rejects.toThrow(/mqtt\.port/);
    expect(cache).toMatchObject({ hits: 0, writes: 0 });
    await expect(stat(join(dir, CONFIG_CACHE_FILE))).rejects.toThrow();
  });

  test('a file cut short, damaged or of another kind is a miss, and validating writes it again', async () => {
    const raw = { gatewayId: 'site-7' };
    const config = parseConfig(raw);
    configCacheIn(dir, 'build-1').write(raw, config);
    const path = join(dir, CONFIG_CACHE_FILE);
    const whole = await readFile(path);
    for (const broken of [
      whole.subarray(0, whole.length - 3),
      Buffer.concat([whole.subarray(0, 20), Buffer.from([whole[20]! ^ 0xff]), whole.subarray(21)]),
      Buffer.from('not a cache file'),
      Buffer.alloc(0),
    ]) {
      await writeFile(path, broken, { mode: 0o600 });
      expect(configCacheIn(dir, 'build-1').read(raw)).toBeUndefined();
    }
    const cache = configCacheIn(dir, 'build-1');
    expect(cache.read(raw)).toBeUndefined();
    cache.write(raw, config);
    expect(configCacheIn(dir, 'build-1').read(raw)).toEqual(config);
  });

  test('nothing is read from or written to a folder others can write, or one that is missing', async () => {
    const raw = { gatewayId: 'site-7' };
    const config = parseConfig(raw);
    configCacheIn(dir, 'build-1').write(raw, config);
    await chmod(dir, 0o777);
    expect(configCacheIn(dir, 'build-1').read(raw)).toBeUndefined();
    await chmod(dir, 0o700);
    await chmod(join(dir, CONFIG_CACHE_FILE), 0o666);
    expect(configCacheIn(dir, 'build-1').read(raw)).toBeUndefined();

    const shared = join(dir, 'shared');
    await mkdir(shared, { mode: 0o777 });
    await chmod(shared, 0o777);
    configCacheIn(shared, 'build-1').write(raw, config);
    await expect(stat(join(shared, CONFIG_CACHE_FILE))).rejects.toThrow();

    const missing = join(dir, 'missing');
    expect(() => configCacheIn(missing, 'build-1').write(raw, config)).not.toThrow();
    expect(configCacheIn(missing, 'build-1').read(raw)).toBeUndefined();
  });

  test('values JSON cannot tell apart are different inputs', () => {
    const config = parseConfig({});
    const cache = configCacheIn(dir, 'build-1');
    cache.write({ gatewayId: null }, config);
    expect(configCacheIn(dir, 'build-1').read({ gatewayId: Number.POSITIVE_INFINITY })).toBeUndefined();
    expect(configCacheIn(dir, 'build-1').read({ gatewayId: undefined })).toBeUndefined();
    expect(configCacheIn(dir, 'build-1').read({ gatewayId: null })).toEqual(config);
  });
});
