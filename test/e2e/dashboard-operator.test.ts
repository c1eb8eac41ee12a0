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

// Run in the page (plain JavaScript: the tests are not compiled against the DOM).

/** Controls the keyboard should reach: visible, not taken out of the order; a radio group is one stop. */
const COUNT_CONTROLS = `(() => {
  const groups = new Set();
  let n = 0;
  for (const el of document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')) {
    if (!el.checkVisibility() || el.tabIndex < 0) continue;
    if (el.type === 'radio') {
      if (groups.has(el.name)) continue;
      groups.add(el.name);
    }
    n++;
  }
  return n;
})()`;

/** The focused control and whether a ring is drawn: its outline, or its label's where the input is not drawn. */
const FOCUSED = `(() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const what = el.type === 'radio'
    ? 'radio ' + el.name
    : el.tagName.toLowerCase() + ' ' + (el.id || el.getAttribute('name') || el.textContent.trim());
  const ringOf = (x) => {
    if (!x) return false;
    const st = getComputedStyle(x);
    return st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) >= 2;
  };
  return { what, ring: ringOf(el) || ringOf(el.closest('label')) };
})()`;

/** Visible text (the charts' canvas aside) below the WCAG AA contrast with its background. */
const POOR_CONTRAST = `(() => {
  const rgb = (c) => (/rgba?\\(([^)]+)\\)/.exec(c)?.[1] ?? '0,0,0,0').split(/[ ,\\/]+/).map(Number);
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (el) => {
    for (let x = el; x; x = x.parentElement) {
      const c = rgb(getComputedStyle(x).backgroundColor);
      if ((c[3] ?? 1) > 0) return c;
    }
    return [255, 255, 255, 1];
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.checkVisibility() || el.closest('.uplot')) continue;
    const st = getComputedStyle(el);
    const [a, b] = [lum(rgb(st.color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(st.fontSize);
    const large = size >= 24 || (size >= 18.6 && Number(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) out.push(el.tagName + ' "' + el.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2));
  }
  return out;
})()`;

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
    expect((await text(page, '#scenarios thead th:nth-child(3)')).trim()).toBe('detected /min');
    expect((await text(page, '#scenarios thead th:nth-child(4)')).trim()).toBe('suppressed /min');
    expect(problems).toEqual([]);
  }, 90_000);

  test('Tab reaches every control in page order, each with a visible focus ring', async () => {
    const browser = await launchChromium(cleanups);
    const { page, problems } = await watchedPage(browser);
    await page.goto(`${fleet.base}/`);
    await page.locator('#live.on').waitFor();
    await page.locator('#scenarios a.scenario-id').first().waitFor();
    const controls = await page.evaluate<number>(COUNT_CONTROLS);
    const reached: Array<{ what: string; ring: boolean }> = [];
    for (let i = 0; i < 200; i++) {
      await page.keyboard.press('Tab');
      const now = await page.evaluate<{ what: string; ring: boolean } | null>(FOCUSED);
      if (!now || reached.some((r) => r.what === now.what)) break;
      reached.push(now);
    }
    const names = reached.map((r) => r.what);
    expect(reached.length, names.join(', ')).toBe(controls);
    expect(reached.filter((r) => !r.ring)).toEqual([]);
    // Page order: the range, the scenarios, then the action filters and the device lookup.
    const at = (re: RegExp) => names.findIndex((n) => re.test(n));
    const order = [/^radio range$/, /^a /, /^select scenario$/, /^select status$/, /^select reason$/];
    order.push(/^input actor$/, /^input showSuppressed$/, /^input device-id$/, /^button look up$/);
    const positions = order.map(at);
    expect(
      positions.every((p) => p >= 0),
      names.join(', '),
    ).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);

    // A scenario opens from the keyboard.
    await page.locator('#scenarios a.scenario-id').first().focus();
    await page.keyboard.press('Enter');
    await page.locator('#detail:not([hidden])').waitFor();
    expect(problems).toEqual([]);
  }, 60_000);

  test('text is readable in the light and the dark theme (WCAG AA contrast)', async () => {
    const browser = await launchChromium(cleanups);
    for (const colorScheme of ['light', 'dark'] as const) {
      const { page } = await watchedPage(browser, { colorScheme });
      await page.goto(`${fleet.base}/`);
      await page.locator('#live.on').waitFor();
      await page.locator('#actions li').first().waitFor({ timeout: 20_000 });
      const poor = await page.evaluate<string[]>(POOR_CONTRAST);
      expect(poor, colorScheme).toEqual([]);
    }
  }, 60_000);
});
