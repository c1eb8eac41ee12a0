import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { ReplayOutput } from '../../src/runtime/index.js';
import { runCli } from '../helpers/cli.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { tempDir } from '../helpers/temp.js';
import { OnboardingGateway } from '../integration/onboarding-gateway.js';
import { busyRun, LiveRun } from '../integration/retention-run.js';
import { connectDevice, crashScene, waitUntil, type CrashScene } from './crash-harness.js';

// Needs `npm run build` first: the command line is the built dist/cli.js.

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Every file below `dir` (recursively) with the sha-256 of its content. */
async function treeHashes(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files[relative(dir, path)] = createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
  }
  return files;
}

const LIMIT_RULES = {
  'over-limit.yaml': `id: over-limit
description: A reading above the limit in the device's profile goes to the cloud.
priority: 50
category: maintenance
when:
  event: telemetry
  where: data.temp > profile.maxTemp
then:
  action: over-limit
  to: [upstream]
  payload:
    n: data.n
`,
};

async function importProfiles(scene: CrashScene, name: string, profiles: object[]): Promise<void> {
  const file = join(scene.dir, name);
  await writeFile(file, profiles.map((p) => JSON.stringify(p) + '\n').join(''));
  const imported = await runCli(['profiles', 'import', file, '--data', scene.data]);
  expect(imported.code, imported.out).toBe(0);
}

async function hashes(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    files[name] = createHash('sha256')
      .update(await readFile(join(dir, name)))
      .digest('hex');
  }
  return files;
}

/** The ids of the actions an NDJSON replay output sends, sorted. */
function sentIds(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as ReplayOutput)
    .filter((line) => line.suppressed === undefined)
    .map((line) => line.id)
    .sort();
}

describe('vigil replay --journal DATA_DIR', () => {
  test('prints the actions the gateway sent, with their ids, and a summary per scenario; writes nothing', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const data = join(tmp.path, 'data');
    const run = await LiveRun.start(join(data, 'journal'));
    cleanups.push(() => run.durable.close());
    const { swappedAt } = await busyRun(run);
    const before = await hashes(join(data, 'journal'));

    const result = await runCli(['replay', '--journal', data, '--gateway-id', 'gw1']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ReplayOutput);
    const sent = lines.filter((l) => l.suppressed === undefined);
    expect(sent.map((l) => l.id).sort()).toEqual(run.sentIds());
    expect(sent.every((l) => l.gateway === 'gw1')).toBe(true);
    const burst = run.sent.filter((a) => a.scenario === 'burst').length;
    expect(result.stderr).toMatch(new RegExp(`^burst +${burst} +\\d+ +0$`, 'm'));
    expect(result.stderr).toMatch(/replayed \d+ records from empty state/);
    expect(await hashes(join(data, 'journal'))).toEqual(before);

    const later = await runCli(['replay', '--journal', data, '--from', new Date(swappedAt).toISOString()]);
    expect(later.code, later.stderr).toBe(0);
    const laterIds = later.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as ReplayOutput).id)
      .sort();
    expect(laterIds).toEqual(
      run.sent
        .filter((a) => a.decidedAt >= swappedAt)
        .map((a) => a.id)
        .sort(),
    );

    const early = await runCli(['replay', '--journal', data, '--from', String(run.now - 3_600_000)]);
    expect(early.code).toBe(2);
    expect(early.stderr).toContain('is not within what the journal');
    expect(early.stderr).toContain('retains');
  }, 60_000);

  test("an event emitted for a customer is replayed where the gateway journaled it, with the customer's recorded profile", async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const run = await OnboardingGateway.start(tmp.path);
    cleanups.push(() => run.stop());
    await run.importProfiles();
    await run.restart();
    await run.record('crm', 'account-created', { customerId: 'cust-1' });
    await run.record('billing', 'contract-created', { customerId: 'cust-1', plan: 'gold' });
    await run.record('router-17', 'device-assigned', { customerId: 'cust-1', model: 'r7' });
    const [welcome] = await run.welcomes(1);
    await run.gateway.stop();

    const result = await runCli(['replay', '--journal', tmp.path, '--gateway-id', 'gw1']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ReplayOutput);
    expect(lines).toMatchObject([
      {
        id: welcome?.id,
        scenario: 'welcome',
        actor: 'cust-1',
        payload: { name: 'Ada Lovelace', email: 'ada@example.com', plan: 'gold' },
      },
    ]);
  }, 60_000);

  test('judges a device the journal records no profile change of by the store as it is now, from a copy', async () => {
    const scene = await crashScene({ rules: LIMIT_RULES, onCleanup: (c) => cleanups.push(c) });
    // Imported before the gateway ever ran: in the store, and in no journal record.
    await importProfiles(scene, 'first.ndjson', [
      { id: 'dev-a', maxTemp: 50 },
      { id: 'dev-b', maxTemp: 80 },
      { id: 'dev-c', maxTemp: 50 },
    ]);
    const gateway = await startGatewayProcess(scene.args(0));
    cleanups.push(() => gateway.stop());
    const device = await connectDevice(gateway.mqttPort, 'feeder');
    cleanups.push(() => device.endAsync(true));
    const reading = (actor: string, n: number) =>
      device.publishAsync(`devices/${actor}/events/telemetry`, JSON.stringify({ temp: 60, n }), { qos: 1 });
    await reading('dev-a', 1); // over dev-a's 50
    await reading('dev-b', 2); // within dev-b's 80
    await reading('dev-c', 3); // over dev-c's 50
    // Through the running gateway, so recorded in the journal with what they replace.
    await importProfiles(scene, 'second.ndjson', [
      { id: 'dev-a', maxTemp: 70 },
      { id: 'dev-b', maxTemp: 55 },
    ]);
    await reading('dev-a', 4); // within dev-a's 70
    await reading('dev-b', 5); // over dev-b's 55
    const cloudKeys = () =>
      scene.cloud.actions.map(({ action }) => `${action.actor} ${String(action.payload.n)}`);
    await waitUntil(() => scene.cloud.actions.length >= 3, 10_000, 'three actions at the cloud');
    expect(cloudKeys().sort()).toEqual(['dev-a 1', 'dev-b 5', 'dev-c 3']);
    const cloudIds = new Set(scene.cloud.actions.map(({ action }) => action.id));
    const tmp = join(scene.dir, 'tmp');
    await mkdir(tmp);
    const env = { TMPDIR: tmp };

    // Beside the gateway that holds the store.
    const beside = await runCli(['replay', '--journal', scene.data], env);
    expect(beside.code, beside.stderr).toBe(0);
    expect(sentIds(beside.stdout)).toEqual([...cloudIds].sort());

    expect(await gateway.stop()).toBe(0);
    const before = await treeHashes(scene.data);
    const after = await runCli(['replay', '--journal', scene.data], env);
    expect(after.code, after.stderr).toBe(0);
    expect(sentIds(after.stdout)).toEqual([...cloudIds].sort());
    expect(after.stderr).not.toContain('without a profile');
    // --profiles replaces the store's profile of a device the journal records no change of.
    await writeFile(join(scene.dir, 'given.ndjson'), '{"id":"dev-c","maxTemp":90}\n');
    const given = await runCli(
      ['replay', '--journal', scene.data, '--profiles', join(scene.dir, 'given.ndjson')],
      env,
    );
    expect(given.code, given.stderr).toBe(0);
    expect(sentIds(given.stdout)).toEqual(
      scene.cloud.actions
        .filter(({ action }) => action.actor !== 'dev-c')
        .map(({ action }) => action.id)
        .sort(),
    );
    expect(await treeHashes(scene.data)).toEqual(before);
    // The copies are gone.
    expect(await readdir(tmp)).toEqual([]);
  }, 60_000);

  test('a directory that is not a data directory, or holds no journal, is refused plainly', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const missing = await runCli(['replay', '--journal', join(tmp.path, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('does not exist');
    await mkdir(join(tmp.path, 'empty'));
    const empty = await runCli(['replay', '--journal', join(tmp.path, 'empty')]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('holds no journal');
    expect(await readdir(join(tmp.path, 'empty'))).toEqual([]);
  }, 30_000);
});
