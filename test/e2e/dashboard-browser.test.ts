import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import type { Locator } from 'playwright-core';
import { afterEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import {
  CHROMIUM,
  hasChromium,
  launchChromium,
  startFleet,
  watchedPage,
  type Cleanups,
} from '../helpers/dashboard-fleet.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ARTIFACTS = join(ROOT, 'test', 'artifacts');

async function attributes(elements: Locator, name: string): Promise<Array<string | null>> {
  return Promise.all((await elements.all()).map((e) => e.getAttribute(name)));
}
if (!hasChromium)
  console.warn(
    `dashboard browser test skipped: ${CHROMIUM} not found (apt-get install chromium; CI installs it)`,
  );

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(!hasChromium)('the dashboard in headless Chromium, against the built gateway', () => {
  test(
    'loads without console errors, lists the scenarios, shows a new action within 2 s, and draws a diagram',
    { timeout: 60_000 },
    async () => {
      const { gateway, base, atCloud, secretOf } = await startFleet(cleanups, { extraProfiles: ['probe-1'] });
      const browser = await launchChromium(cleanups);
      const { page, problems } = await watchedPage(browser);

      await page.goto(`${base}/`);
      const scenarios = (
        (await (await fetch(`${base}/api/scenarios`)).json()) as { scenarios: Array<{ id: string }> }
      ).scenarios;
      await page.locator('tr[data-scenario="overheat"]').waitFor();
      expect(await attributes(page.locator('#scenarios tbody tr'), 'data-scenario')).toEqual(
        scenarios.map((s) => s.id),
      );
      await page.locator('#live.on').waitFor();
      expect(await page.locator('#gateway').textContent()).toBe('demo');

      // A device of its own, so that no cooldown from the fleet holds its action back.
      const probe = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqttPort}`, {
        clientId: 'probe-1',
        username: 'probe-1',
        password: secretOf('probe-1'),
        reconnectPeriod: 0,
      });
      cleanups.push(() => probe.endAsync());
      await probe.publishAsync('devices/probe-1/events/telemetry', JSON.stringify({ temp: 20, bat: 3.0 }), {
        qos: 1,
      });
      // The bound: the page batches once a second, so the action is there within 2 s.
      const shown = page.locator('#actions li', { hasText: 'probe-1' });
      await shown.waitFor({ timeout: 2_000 });
      expect(await shown.textContent()).toMatch(/low-battery\s*sent\s*probe-1 → replace-battery/);
      // The same action as the cloud received.
      await atCloud.waitFor(
        (m) => m.some((x) => (JSON.parse(x.payload.toString()) as Action).actor === 'probe-1'),
        5_000,
        'the probe action upstream',
      );
      const upstream = atCloud.json<Action>().find((a) => a.actor === 'probe-1');
      expect(await shown.getAttribute('data-id')).toBe(upstream?.id);

      // The scenario's definition as a diagram.
      await page.locator('tr[data-scenario="overheat-sustained"]').click();
      await page.locator('#detail:not([hidden]) .box.window').waitFor();
      expect(await attributes(page.locator('#detail-diagram .box'), 'data-role')).toEqual([
        'event',
        'window',
        'action',
      ]);
      expect(await page.locator('#detail-diagram').textContent()).toContain('3 times within 2m');
      expect(await page.locator('#detail-summary').textContent()).toBe(
        'Fires when 3 telemetry events where data.temp > 80 come within 2m; then it counts again from zero.',
      );

      // Let the fleet run a little so that the charts have something to show, then take the picture.
      const overheatDetected = page.locator('tr[data-scenario="overheat"] td:nth-child(5)');
      await expect
        .poll(async () => Number(await overheatDetected.textContent()), { timeout: 20_000 })
        .toBeGreaterThanOrEqual(3);
      // docs/dashboard.png comes from scripts/dashboard-screenshot.ts; this one is the test's record.
      await page.waitForTimeout(3_000);
      await mkdir(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'dashboard.png');
      await page.screenshot({ path: shot, fullPage: true });

      expect(problems).toEqual([]);
    },
  );
});
