import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { openStore } from '../../src/store/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Writes `bytes` of profiles and says how many LevelDB tables the data directory holds after a close. */
async function tablesAfterWriting(bytes: number, writeBufferBytes: number | undefined): Promise<number> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const data = join(dir.path, 'data');
  const store = await openStore(data, { writeBufferBytes });
  const note = 'x'.repeat(1_000);
  for (let i = 0; i < bytes / 1_000; i += 100) {
    const batch = Array.from({ length: 100 }, (_, j) => ({ id: `dev-${i + j}`, profile: { note } }));
    await store.profiles.putMany(batch);
  }
  await store.close();
  return (await readdir(data)).filter((name) => name.endsWith('.ldb')).length;
}

test('LevelDB holds no more writes in memory than its write buffer', async () => {
  // 2 MB of writes: within the 16 MiB buffer of the import tools they all stay in memory (and its log) ...
  expect(await tablesAfterWriting(2_000_000, undefined)).toBe(0);
  // ... past a 256 KiB buffer they go to tables as they come.
  expect(await tablesAfterWriting(2_000_000, 256 * 1024)).toBeGreaterThan(0);
});

test("the gateway's LevelDB memory is configured under store, with LevelDB's own defaults", () => {
  expect(configSchema.parse({}).store).toEqual({ writeBuffer: 4 * 1024 * 1024, blockCache: 8 * 1024 * 1024 });
  expect(configSchema.parse({ store: { writeBuffer: '1MiB', blockCache: '512KiB' } }).store).toEqual({
    writeBuffer: 1024 * 1024,
    blockCache: 512 * 1024,
  });
  expect(configSchema.safeParse({ store: { writeBuffer: 'lots' } }).success).toBe(false);
});
