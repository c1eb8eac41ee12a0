import type { Page } from 'playwright-core';
import { afterEach, describe, expect, test } from 'vitest';
import type { Presence } from '../../src/dashboard/index.js';
import {
  hasChromium,
  launchChromium,
  startFleet,
  watchedPage,
  type Cleanups,
} from '../helpers/dashboard-fleet.js';

// The dashboard's views in headless Chromium against the built gateway and a simulated fleet: the charts'
// axes, presence against /api, the filters of the recent actions.

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function attr(page: Page, selector: string, name: string): Promise<string> {
  return (await page.locator(selector).getAttribute(name)) ?? '';
}

async function listed(page: Page): Promise<Array<{ what: string; verdict: string; who: string }>> {
  const items = await page.locator('#actions li').all();
  return Promise.all(
    items.map(async (li) => ({
      what: (await li.locator('.what').textContent()) ?? '',
      verdict: (await li.locator('.verdict').textContent()) ?? '',
      who: (await li.locator('.who').textContent()) ?? '',
    })),
  );
}

describe.skipIf(!hasChromium)('the dashboard views in headless Chromium', () => {
  test(
    'charts have time axes, labels and units; presence matches /api; filters change the list',
    {
      timeout: 90_000,
    },
    async () => {
      const { base } = await startFleet(cleanups, { extraProfiles: ['ghost-1', 'ghost-2'] });
      const browser = await launchChromium(cleanups);
      const { page, problems } = await watchedPage(browser, { colorScheme: 'dark' });
      await page.goto(`${base}/`);
      await page.locator('#live.on').waitFor();

      // The first 5 s point comes within 10 s of the start; the page fetches the history every 5 s.
      await expect
        .poll(async () => Number(await attr(page, '[data-chart="events"]', 'data-points')), {
          timeout: 20_000,
        })
        .toBeGreaterThanOrEqual(1);
      expect(await attr(page, '[data-chart="events"]', 'data-y-label')).toBe('events/s');
      expect(await attr(page, '[data-chart="events"]', 'data-y-ticks')).toMatch(/^0\/s( \| [\d.,K]+\/s)+$/);
      // Local clock times, HH:MM.
      expect(await attr(page, '[data-chart="events"]', 'data-x-ticks')).toMatch(
        /^\d\d:\d\d( \| \d\d:\d\d)+$/,
      );
      expect(await attr(page, '[data-chart="actions"]', 'data-y-label')).toBe('actions/s');
      expect(await attr(page, '[data-chart="latency"]', 'data-y-label')).toBe('latency (ms)');
      expect(await attr(page, '[data-chart="latency"]', 'data-y-ticks')).toMatch(
        /^0 ms( \| [\d.,]+ (ms|s))+$/,
      );
      expect(await attr(page, '[data-chart="outbox"]', 'data-y-label')).toBe(
        'actions waiting | oldest waiting',
      );
      expect(await attr(page, '[data-chart="outbox"]', 'data-y2-ticks')).toMatch(/ (ms|s)$/);
      expect(await attr(page, '[data-chart="uplink"]', 'data-y-ticks')).toBe('down | up');
      expect(await attr(page, '[data-chart="connected"]', 'data-y-label')).toBe('devices');
      const events = page.locator('[data-chart="events"] [role="img"]');
      expect(await events.getAttribute('aria-label')).toMatch(
        /^Events in over the last 1h, .*latest: events in [\d.,K]+\/s$/,
      );

      // The range by keyboard: from 1 h, the arrow key moves to 24 h (minute points).
      await page.locator('input[name="range"][value="1h"]').focus();
      await page.keyboard.press('ArrowRight');
      expect(await page.locator('input[name="range"]:checked').getAttribute('value')).toBe('24h');
      await expect.poll(() => events.getAttribute('aria-label')).toMatch(/over the last 24h/);

      // Presence: the page's numbers are /api's, and they add up.
      type Shown = Record<'connected' | 'away' | 'silent' | 'never', number>;
      const shown = async (): Promise<Shown> => {
        const n = async (id: string) =>
          Number((await page.locator(`#pr-${id}`).textContent())?.replace(/\D/g, ''));
        return {
          connected: await n('connected'),
          away: await n('away'),
          silent: await n('silent'),
          never: await n('never'),
        };
      };
      const api = async (): Promise<Shown> => {
        const p = ((await (await fetch(`${base}/api/health`)).json()) as { presence: Presence }).presence;
        return { connected: p.connected, away: p.away, silent: p.silent, never: p.neverSeen };
      };
      // The fleet connects over the first seconds, and the devices never seen are counted every 10 s (the
      // profiles came after the first count): compare once the ghosts are counted and two reads of the API
      // agree with the page between them.
      let p: Shown | undefined;
      await expect
        .poll(
          async () => {
            const before = await api();
            const onPage = await shown();
            const after = await api();
            const same = JSON.stringify(before) === JSON.stringify(after);
            p = same && JSON.stringify(onPage) === JSON.stringify(after) ? onPage : undefined;
            return p?.never ?? 0;
          },
          { timeout: 30_000 },
        )
        .toBeGreaterThanOrEqual(2); // the two ghosts have profiles and never connect
      if (!p) throw new Error('unreachable: the poll passed with a reading');
      expect(p.connected).toBeGreaterThan(0);
      expect(await page.locator('#pr-total').textContent()).toBe(
        `${p.connected + p.away + p.silent + p.never} in all`,
      );
      expect(await page.locator('#pr-never-means').textContent()).toMatch(
        /counted every 10 s, last at \d\d:\d\d:\d\d/,
      );
      expect(await page.locator('#pr-away-means').textContent()).toContain('within the last 5 min');

      // Recent actions: suppressed ones are folded into a count until shown.
      await expect
        .poll(() => page.locator('#actions-folded').textContent(), { timeout: 30_000 })
        .toMatch(/^\d+ suppressed hidden \(/);
      expect((await listed(page)).filter((a) => a.verdict.startsWith('suppressed'))).toEqual([]);
      await page.locator('input[name="showSuppressed"]').check();
      expect((await listed(page)).some((a) => a.verdict.startsWith('suppressed'))).toBe(true);

      await page.locator('select[name="status"]').selectOption('sent');
      const sent = await listed(page);
      expect(sent.length).toBeGreaterThan(0);
      expect(sent.every((a) => a.verdict === 'sent')).toBe(true);

      await page.locator('select[name="status"]').selectOption('');
      const scenario = sent[0]?.what ?? '';
      await page.locator('select[name="scenario"]').selectOption(scenario);
      const ofScenario = await listed(page);
      expect(ofScenario.length).toBeGreaterThan(0);
      expect(ofScenario.every((a) => a.what === scenario)).toBe(true);

      const actor = (sent[0]?.who ?? '').split(' → ')[0] ?? '';
      await page.locator('select[name="scenario"]').selectOption('');
      await page.locator('input[name="actor"]').fill(actor);
      const ofActor = await listed(page);
      expect(ofActor.length).toBeGreaterThan(0);
      expect(ofActor.every((a) => a.who.startsWith(`${actor} → `))).toBe(true);

      await page.locator('input[name="actor"]').fill('');
      // An option's text is its value; the first is `all`.
      const reasons = (await page.locator('select[name="reason"] option').allTextContents()).slice(1);
      expect(reasons.length).toBeGreaterThan(0);
      await page.locator('select[name="reason"]').selectOption(reasons[0] ?? '');
      const ofReason = await listed(page);
      expect(ofReason.length).toBeGreaterThan(0);
      expect(ofReason.every((a) => a.verdict.endsWith(`: ${reasons[0]}`))).toBe(true);

      expect(problems).toEqual([]);
    },
  );
});
