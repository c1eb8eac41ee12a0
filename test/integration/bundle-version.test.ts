import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { tempDir } from '../helpers/temp.js';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function vigil(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VIGIL_DATA: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

const SEEN =
  'id: seen\npriority: 10\ncategory: audit\nwhen:\n  event: telemetry\nthen:\n  action: seen\n  to: []\n';

describe('vigil rules bundle picks the next version', () => {
  test(
    'one above the last recorded beside the key or the bundle it replaces; --version sets it; a gateway takes each in turn',
    { timeout: 120_000 },
    async () => {
      const tmp = await tempDir();
      cleanups.push(() => tmp.remove());
      const keys = join(tmp.path, 'keys');
      const key = join(keys, 'private.pem');
      const rules = join(tmp.path, 'rules');
      await mkdir(rules);
      await writeFile(join(rules, 'seen.yaml'), SEEN);
      expect((await vigil('keygen', '--out', keys)).code).toBe(0);
      const out = join(tmp.path, 'rules.bundle');
      const bundle = (...more: string[]) =>
        vigil('rules', 'bundle', rules, '--key', key, '--out', out, ...more);
      const recorded = async () => (await readFile(join(keys, 'bundle-version'), 'utf8')).trim();
      const data = join(tmp.path, 'data');
      const apply = () =>
        vigil('rules', 'apply', out, '--data', data, '--trusted-key', join(keys, 'public.pem'));

      const first = await bundle();
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/bundle version 1, 1 files/);
      expect(first.stdout).toContain(`version 1: the first bundle signed from ${keys}`);
      expect(await recorded()).toBe('1');
      expect((await apply()).stdout).toMatch(/applied bundle version 1/);

      await writeFile(join(rules, 'seen.yaml'), SEEN.replace('priority: 10', 'priority: 11'));
      const second = await bundle();
      expect(second.stdout).toContain(
        `version 2: one above version 1, the last recorded in ${join(keys, 'bundle-version')}`,
      );
      expect((await apply()).stdout).toMatch(/applied bundle version 2/);

      const chosen = await bundle('--version', '7');
      expect(chosen.stdout).toMatch(/bundle version 7,/);
      expect(chosen.stdout).not.toContain('version 7:');
      expect(await recorded()).toBe('7');
      // A lower version given by hand does not lower the record.
      expect((await bundle('--version', '5')).code).toBe(0);
      expect(await recorded()).toBe('7');
      expect((await bundle('--version', '8')).code).toBe(0);

      // Without the record, the bundle at --out (signed by this key) still counts.
      await rm(join(keys, 'bundle-version'));
      const replaced = await bundle();
      expect(replaced.stdout).toContain(`version 9: one above version 8, ${out}, the bundle it replaces`);
      expect((await apply()).stdout).toMatch(/applied bundle version 9/);

      await writeFile(join(keys, 'bundle-version'), 'seven\n');
      const bad = await bundle();
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('should hold the last bundle version, not "seven"');
      expect(bad.stderr).toContain('pass --version N');
    },
  );
});
