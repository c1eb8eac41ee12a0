import type { Page } from 'playwright-core';
import { afterEach, describe, expect, test } from 'vitest';
import type { DeviceExplanation, DeviceOverview } from '../../src/dashboard/index.js';
import {
  hasChromium,
  launchChromium,
  startFleet,
  watchedPage,
  type Cleanups,
} from '../helpers/dashboard-fleet.js';

// A device's page in headless Chromium against the built gateway and a simulated fleet: opened from a
// recent action by keyboard, what it shows against /api/devices/{id}/overview, and an unknown device.

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function overview(base: string, id: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${base}/api/devices/${encodeURIComponent(id)}/overview`);
  return { status: res.status, body: await res.json() };
}

async function text(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).textContent()) ?? '';
}

describe.skipIf(!hasChromium)("a device's page in headless Chromium", () => {
  test('opens from a recent action and shows the profile without the secret, presence, events and decisions', async () => {
    const fleet = await startFleet(cleanups);
    const browser = await launchChromium(cleanups);
    const { page, problems } = await watchedPage(browser);
    await page.goto(`${fleet.base}/`);
    await page.locator('#live.on').waitFor();
    await page.locator('#actions li a.device-link').first().waitFor({ timeout: 30_000 });

    // By keyboard: the list is one tab stop, the arrow keys reach its devices, Enter opens one.
    await page.locator('#actions').focus();
    await page.keyboard.press('ArrowDown');
    const id = await page.evaluate<string>(`document.activeElement?.textContent ?? ''`);
    expect(id).not.toBe('');
    await page.keyboard.press('Enter');
    await page.locator('#device-page:not([hidden])').waitFor();
    expect(page.url()).toMatch(new RegExp(`#device/${encodeURIComponent(id)}$`));
    expect(await text(page, '#device-title')).toBe(id);
    expect(await page.evaluate<string>('document.activeElement?.id')).toBe('device-title');

    const api = (await overview(fleet.base, id)).body as DeviceOverview;
    expect(api.profile).not.toBeNull();
    const shownKeys = await page.locator('#device-profile dt').allTextContents();
    expect(shownKeys).toEqual(Object.keys(api.profile ?? {}));
    // The device's secret and its credential hash are nowhere, on the page or in the API.
    const body = (await page.locator('body').textContent()) ?? '';
    for (const where of [body, JSON.stringify(api)]) {
      expect(where).not.toContain(fleet.secretOf(id));
      expect(where).not.toContain('hmac-sha256');
    }
    // Presence as /api has it (a simulated device stays connected).
    expect(api.presence).toBe('connected');
    expect(await page.locator('#device-presence').getAttribute('class')).toContain(api.presence);
    expect(await text(page, '#device-presence')).toMatch(/^connected: connected to the gateway's broker now/);
    // Its last events and its decisions, the one that opened the page among them.
    expect(api.events.length).toBeGreaterThan(0);
    expect(await page.locator('#device-events li').count()).toBeGreaterThan(0);
    expect(api.decisions.length).toBeGreaterThan(0);
    const whos = await page.locator('#device-decisions li .who').allTextContents();
    expect(whos.length).toBeGreaterThan(0);
    expect(whos.every((w) => w.startsWith(`${id} → `))).toBe(true);

    // Where it stands in each scenario, as /api/devices/{id}/explain has it: the silence deadline of
    // device-offline (every simulated device keeps one open), and its decisions with their reasons. The page
    // is read first: the API, asked after, may know of newer decisions.
    const shown = await page.evaluate<Array<{ scenario: string; state: string; why: string[] }>>(
      `[...document.querySelectorAll('#device-standing li[data-scenario]')].map((li) => ({
        scenario: li.dataset.scenario,
        state: li.querySelector('.state')?.textContent ?? '',
        why: [...li.querySelectorAll('.why li')].map((x) => x.textContent),
      }))`,
    );
    const res = await fetch(`${fleet.base}/api/devices/${encodeURIComponent(id)}/explain`);
    expect(res.status).toBe(200);
    const explained = (await res.json()) as DeviceExplanation;
    const silence = /^waiting for any event until \S+Z \(silence deadline; the last came at \S+Z\)$/;
    expect(explained.scenarios.find((s) => s.scenario === 'device-offline')?.state).toMatch(silence);
    expect(shown.find((s) => s.scenario === 'device-offline')?.state).toMatch(silence);
    const apiScenarios = explained.scenarios.map((s) => s.scenario);
    for (const s of shown) expect(apiScenarios).toContain(s.scenario);
    // The action that opened the page is among the decisions shown, each line a time, the action and its reason.
    const why = shown.flatMap((s) => s.why);
    expect(why.length).toBeGreaterThan(0);
    for (const line of why)
      expect(line).toMatch(/^\d\d:\d\d:\d\d\S*: (sent|suppressed by|exclusive because|expired|dropped)/);
    // The scenarios with nothing to say share one line.
    expect(await page.locator('#device-standing li.quiet').textContent()).toMatch(
      /^nothing pending, no decisions kept: /,
    );

    // Closing goes back to the overview.
    await page.locator('#device-page .close').click();
    await page.locator('#device-page').waitFor({ state: 'hidden' });
    expect(problems).toEqual([]);
  }, 90_000);

  test('an unknown device is "not known" on the page and a 404 from the API; the look-up opens a page', async () => {
    const fleet = await startFleet(cleanups, { extraProfiles: ['ghost-1'] });
    const api = await overview(fleet.base, 'nobody-here');
    expect(api.status).toBe(404);
    expect(api.body).toMatchObject({ error: { code: 'VIGIL_NOT_FOUND' } });

    const browser = await launchChromium(cleanups);
    const { page, problems } = await watchedPage(browser);
    await page.goto(`${fleet.base}/#device/nobody-here`);
    await page.locator('#device-page:not([hidden])').waitFor();
    expect(await text(page, '#device-title')).toBe('nobody-here');
    expect(await text(page, '#device-presence')).toMatch(/^not known/);
    expect(await page.locator('#device-body').textContent()).toBe('');

    // The look-up, by keyboard: a device with a profile, never heard from.
    await page.locator('#device-id').focus();
    await page.keyboard.type('ghost-1');
    await page.keyboard.press('Enter');
    await expect.poll(() => text(page, '#device-title')).toBe('ghost-1');
    await expect.poll(() => text(page, '#device-presence')).toMatch(/^never seen: /);
    expect(((await overview(fleet.base, 'ghost-1')).body as DeviceOverview).presence).toBe('never-seen');
    expect(await text(page, '#device-events')).toMatch(/^none kept/);
    // The browser logs the unknown device's 404 itself; nothing else went wrong.
    expect(problems).toEqual([
      'console: Failed to load resource: the server responded with a status of 404 (Not Found)',
    ]);
  }, 90_000);
});
