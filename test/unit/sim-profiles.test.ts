import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { generateProfiles, planFleet, writeProfilesNdjson } from '../../firmware-sim/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-sim-profiles-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('the NDJSON file holds one profile per device, the same ones the simulator runs', async () => {
  const opts = { devices: 2_345, seed: 5, sites: 12 };
  const file = join(dir, 'profiles.ndjson');
  expect(await writeProfilesNdjson(file, opts)).toBe(2_345);
  const lines = (await readFile(file, 'utf8')).split('\n');
  expect(lines.pop()).toBe('');
  expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([...generateProfiles(opts)]);
  const plan = planFleet({ ...opts, rate: 1, durationMs: 0 });
  expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual(plan.devices.map((d) => d.profile));
  expect(Object.keys(JSON.parse(lines[0] ?? '{}') as object).sort()).toEqual([
    'customer',
    'id',
    'maxTemp',
    'model',
    'site',
  ]);
});

test('bad options are refused before a file is written', async () => {
  const file = join(dir, 'never.ndjson');
  await expect(writeProfilesNdjson(file, { devices: -1 })).rejects.toMatchObject({ code: 'VIGIL_CONFIG' });
  await expect(readFile(file)).rejects.toMatchObject({ code: 'ENOENT' });
});
