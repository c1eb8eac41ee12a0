// Takes docs/dashboard.png from a real run: the built gateway, a cloud broker and a simulated fleet (as in
// the demo), the page in headless Chromium once the history has a few minutes of points.
//
//   npm run build && node --import tsx scripts/dashboard-screenshot.ts [--minutes 3] [--out docs/dashboard.png]
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  CHROMIUM,
  hasChromium,
  launchChromium,
  startFleet,
  watchedPage,
  type Cleanups,
} from '../test/helpers/dashboard-fleet.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    out: { type: 'string', default: 'docs/dashboard.png' },
    theme: { type: 'string', default: 'light' },
  },
});

async function main(): Promise<void> {
  if (!hasChromium) throw new Error(`${CHROMIUM} not found (apt-get install chromium)`);
  const minutes = Number(values.minutes);
  if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, got ${values.minutes}`);
  const out = resolve(values.out);
  const cleanups: Cleanups = [];
  try {
    const fleet = await startFleet(cleanups, { extraProfiles: ['spare-1', 'spare-2', 'spare-3'] });
    console.log(`gateway at ${fleet.base}; the fleet runs for ${minutes} min before the picture`);
    await new Promise((r) => setTimeout(r, minutes * 60_000));
    const browser = await launchChromium(cleanups);
    const { page, problems } = await watchedPage(browser, {
      colorScheme: values.theme === 'dark' ? 'dark' : 'light',
    });
    await page.goto(`${fleet.base}/`);
    await page.locator('#live.on').waitFor();
    await page.locator('[data-chart="events"][data-points]').waitFor();
    await page.locator('input[name="range"][value="15m"]').check();
    // Two history fetches and a few summaries, so that every part of the page is drawn.
    await page.waitForTimeout(6_000);
    await mkdir(dirname(out), { recursive: true });
    await page.screenshot({ path: out, fullPage: true });
    if (problems.length > 0) throw new Error(`the page reported problems:\n${problems.join('\n')}`);
    console.log(`wrote ${out}`);
  } finally {
    for (const c of cleanups.splice(0).reverse()) await c();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
