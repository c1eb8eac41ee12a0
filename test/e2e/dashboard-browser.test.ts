import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { chromium, type Browser, type Locator } from 'playwright-core';
import { afterEach, describe, expect, test } from 'vitest';
import { generateProfiles, runSim, type SimOptions } from '../../firmware-sim/index.js';
import { startLocalBroker } from '../../src/broker/index.js';
import type { Action } from '../../src/shared/index.js';
import { generateSecret, hashSecret } from '../../src/credentials/index.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ARTIFACTS = join(ROOT, 'test', 'artifacts');
/** Set to refresh the README's screenshot from this run. */
const UPDATE_DOCS = process.env.VIGIL_UPDATE_DOCS_SCREENSHOT === '1';

const hasChromium = existsSync(CHROMIUM);

async function attributes(elements: Locator, name: string): Promise<Array<string | null>> {
  return Promise.all((await elements.all()).map((e) => e.getAttribute(name)));
}
if (!hasChromium)
  console.warn(
    `dashboard browser test skipped: ${CHROMIUM} not found (apt-get install chromium; CI installs it)`,
  );

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(!hasChromium)('the dashboard in headless Chromium, against the built gateway', () => {
  test(
    'loads without console errors, lists the scenarios, shows a new action within 2 s, and draws a diagram',
    { timeout: UPDATE_DOCS ? 150_000 : 60_000 },
    async () => {
      const dir = await tempDir();
      cleanups.push(() => dir.remove());
      const cloud = await startLocalBroker();
      cleanups.push(() => cloud.close());
      const cloudUrl = `mqtt://127.0.0.1:${cloud.address.port}`;
      const atCloud = await Collector.connect(cloudUrl, ['vigil/demo/actions']);
      cleanups.push(() => atCloud.close());

      const gateway = await startGatewayProcess([
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
        '--data',
        join(dir.path, 'data'),
        '--gateway-id',
        'demo',
        '--upstream',
        cloudUrl,
      ]);
      cleanups.push(() => gateway.stop());
      const base = `http://127.0.0.1:${gateway.httpPort}`;

      // A small fleet, as in the demo, so that the page has rates, actions and suppressions to show.
      const sim: SimOptions = {
        url: `mqtt://127.0.0.1:${gateway.mqttPort}`,
        devices: 60,
        rate: 120,
        durationMs: 600_000, // stopped at the end of the test
        seed: 7,
        hotShare: 0.03,
        lowBatteryShare: 0.01,
        humidShare: 0.02,
        heatBursts: 4,
        heatBurstAfterMs: 2_000,
        humidBursts: 3,
        humidBurstAfterMs: 3_000,
      };
      // Every device has a secret; the gateway gets only its hash, with the profile, as from the cloud.
      const secrets = new Map<string, string>();
      const secretOf = (id: string): string => {
        const secret = secrets.get(id) ?? generateSecret();
        secrets.set(id, secret);
        return secret;
      };
      const profiles =
        [...generateProfiles(sim), { id: 'probe-1' }]
          .map((p) => JSON.stringify({ ...p, credential: hashSecret(secretOf(p.id)) }))
          .join('\n') + '\n';
      const imported = await fetch(`${base}/api/profiles/import`, { method: 'POST', body: profiles });
      expect(imported.status).toBe(200);
      const stopSim = new AbortController();
      const simRun = runSim(
        { ...sim, credentials: (id) => ({ username: id, password: secretOf(id) }) },
        { signal: stopSim.signal },
      );
      cleanups.push(async () => {
        stopSim.abort();
        await simRun;
      });

      const browser: Browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      cleanups.push(() => browser.close());
      const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
      const problems: string[] = [];
      page.on('console', (msg) => {
        if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
      });
      page.on('pageerror', (err) => problems.push(`page: ${err.message}`));
      page.on('requestfailed', (req) => {
        // The live stream is cut when the browser closes; anything else failing is a defect.
        if (!req.url().endsWith('/api/live'))
          problems.push(`request: ${req.url()} ${req.failure()?.errorText ?? ''}`);
      });

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
      // For the README, a minute of the fleet: the charts span the last 10 minutes in 10-second bars.
      await page.waitForTimeout(UPDATE_DOCS ? 60_000 : 3_000);
      await mkdir(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'dashboard.png');
      await page.screenshot({ path: shot, fullPage: true });
      if (UPDATE_DOCS) await copyFile(shot, join(ROOT, 'docs', 'dashboard.png'));

      expect(problems).toEqual([]);
    },
  );
});
