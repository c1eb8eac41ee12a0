import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/app/index.js';
import { writeKeyPair } from '../../src/sync/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

/** A umask that takes nothing away, as a careless service unit or shell may set: only the mode asked for protects. */
function permissiveUmask(): void {
  const before = process.umask(0);
  cleanups.push(() => void process.umask(before));
}

describe('files that hold a key or a secret are readable by their owner only', () => {
  test('vigil keygen: the private key 0600, the public key 0644', async () => {
    const dir = await tempDir('vigil-secret-files-');
    cleanups.push(() => dir.remove());
    permissiveUmask();
    const pair = await writeKeyPair(join(dir.path, 'keys'));
    expect(await modeOf(pair.privatePath)).toBe(0o600);
    expect(await modeOf(pair.publicPath)).toBe(0o644);
  });

  test('gateway.json, which holds the API token, is 0600 even where an older one was world-readable', async () => {
    const dir = await tempDir('vigil-secret-files-');
    cleanups.push(() => dir.remove());
    permissiveUmask();
    const marker = join(dir.path, 'gateway.json');
    await writeFile(marker, '{"pid":1}\n');
    await chmod(marker, 0o644);
    const token = 'a-token-of-32-characters-or-so-x';
    const gateway = await startGateway(
      parseConfig({
        data: dir.path,
        mqtt: { host: '127.0.0.1', port: 0 },
        http: { port: 0, token },
        log: { level: 'silent' },
      }),
    );
    cleanups.push(() => gateway.stop());
    expect(JSON.parse(await readFile(marker, 'utf8'))).toMatchObject({ token });
    expect(await modeOf(marker)).toBe(0o600);
  });
});
