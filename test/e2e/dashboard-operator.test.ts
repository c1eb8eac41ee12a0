import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ScenarioRow } from '../../src/dashboard/index.js';
import { runCli } from '../helpers/cli.js';
import {
  hasChromium,
  launchChromium,
  startFleet,
  watchedPage,
  type Cleanups,
  type Fleet,
} from '../helpers/dashboard-fleet.js';
import { tempDir } from '../helpers/temp.js';

// What an operator reads and does on the page, in headless Chromium against the built gateway and a simulated
// fleet: the rules in force as bundles are pushed with `vigil rules apply`, the keyboard, both themes.

const cleanups: Cleanups = [];
let fleet: Fleet;
let keys: string;
let bundles: string;
let keyId: string;

beforeAll(async () => {
  if (!hasChromium) return;
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  keys = join(dir.path, 'keys');
  bundles = dir.path;
  const made = await runCli(['keygen', '--out', keys]);
  expect(made.code, made.out).toBe(0);
  keyId = /^key ([0-9a-f]{16})$/m.exec(made.stdout)?.[1] ?? 'no key id printed';
  fleet = await startFleet(cleanups, {
    gatewayArgs: ['--trusted-key', join(keys, 'public.pem')],
  });
}, 60_000);
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function bundle(version: number): Promise<{ file: string; hash: string }> {
  const file = join(bundles, `v${version}.bundle`);
  const made = await runCli([
    ...['rules', 'bundle', 'rules', '--key', join(keys, 'private.pem')],
    ...['--version', String(version), '--out', file],
  ]);
  expect(made.code, made.out).toBe(0);
  return {
    file,
    hash: createHash('sha256')
      .update(await readFile(file))
      .digest('hex'),
  };
}

const apply = (file: string) => runCli(['rules', 'apply', file, '--data', fleet.dataDir]);
const text = async (page: Page, selector: string) => (await page.locator(selector).textContent()) ?? '';

describe.skipIf(!hasChromium)('the dashboard for an operator, in headless Chromium', () => {
  test('the rules in force: version, id, signer and since, and the last change; they follow a push', async () => {
    const browser = await launchChromium(cleanups);
    const { page, problems } = await watchedPage(browser, { colorScheme: 'dark' });
    await page.goto(`${fleet.base}/`);
    await page.locator('#live.on').waitFor();
    await expect.poll(() => text(page, '#ru-version')).toBe('local rules directory (no bundle)');
    expect(await text(page, '#ru-signer')).toBe('not signed');
    expect(await text(page, '#ru-last')).toBe('none since the gateway started');
    // Since: a date and time with its zone, as the browser reads it.
    expect(await text(page, '#ru-since')).toMatch(/\d\d:\d\d:\d\d .+ \(\d+ s ago\)$/);

    const v1 = await bundle(1);
    expect((await apply(v1.file)).code).toBe(0);
    await expect.poll(() => text(page, '#ru-version'), { timeout: 10_000 }).toBe('bundle version 1');
    expect(await text(page, '#ru-id')).toBe(v1.hash.slice(0, 16));
    expect(await page.locator('#ru-id').getAttribute('title')).toBe(`SHA-256 ${v1.hash}`);
    expect(await text(page, '#ru-signer')).toMatch(new RegExp(`^key ${keyId}, made .*\\d\\d:\\d\\d:\\d\\d`));
    expect(await text(page, '#ru-last')).toMatch(
      /^version 1 \(local\) applied at \d\d:\d\d:\d\d: bundle version 1 of .*, signed by key [0-9a-f]{16}$/,
    );

    const v2 = await bundle(2);
    expect((await apply(v2.file)).code).toBe(0);
    await expect.poll(() => text(page, '#ru-version'), { timeout: 10_000 }).toBe('bundle version 2');
    expect(await text(page, '#ru-id')).toBe(v2.hash.slice(0, 16));

    // A refused push leaves version 2 in force, and says why.
    expect((await apply(v1.file)).code).toBe(1);
    await expect
      .poll(() => text(page, '#ru-last'), { timeout: 10_000 })
      .toMatch(/^version 1 \(local\) rejected: stale-version at \d\d:\d\d:\d\d: version 1 is not greater/);
    expect(await text(page, '#ru-version')).toBe('bundle version 2');
    expect(await page.locator('#ru-last').getAttribute('class')).toBe('bad');

    // Detections and suppressions per minute, per scenario: the page's are the API's.
    const perMinute = async () => {
      const rows = (
        (await (await fetch(`${fleet.base}/api/scenarios`)).json()) as { scenarios: ScenarioRow[] }
      ).scenarios;
      const cells = await page.locator('#scenarios tbody tr td:nth-child(4)').allTextContents();
      return { api: rows.reduce((n, r) => n + r.suppressedPerMinute, 0), page: cells.map(Number) };
    };
    await expect.poll(async () => (await perMinute()).api, { timeout: 30_000 }).toBeGreaterThan(0);
    await expect
      .poll(async () => (await perMinute()).page.reduce((a, b) => a + b, 0), { timeout: 10_000 })
      .toBeGreaterThan(0);
    expect(await text(page, '#scenarios thead th:nth-child(3)')).toBe('detected /min');
    expect(await text(page, '#scenarios thead th:nth-child(4)')).toBe('suppressed /min');
    expect(problems).toEqual([]);
  }, 90_000);
});
