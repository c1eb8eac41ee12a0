import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { ReplayOutput } from '../../src/runtime/index.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';
import { OnboardingGateway } from '../integration/onboarding-gateway.js';
import { busyRun, LiveRun } from '../integration/retention-run.js';

// Needs `npm run build` first: the command line is the built dist/cli.js.

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function hashes(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    files[name] = createHash('sha256')
      .update(await readFile(join(dir, name)))
      .digest('hex');
  }
  return files;
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
    expect(result.stderr).toContain(`burst: ${burst} sent`);
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
