import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { generateProfiles, runSim, type SimOptions } from '../../firmware-sim/index.js';
import { startLocalBroker } from '../../src/broker/index.js';
import { generateSecret, hashSecret } from '../../src/credentials/index.js';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.js';
import { Collector } from './mqtt.js';
import { tempDir } from './temp.js';

// What the dashboard's browser tests and the screenshot script share: Chromium, and the built gateway
// with a small simulated fleet, as in the demo.

export const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);

/** Undone in reverse order by the caller (a test's afterEach, the script's end). */
export type Cleanups = Array<() => Promise<unknown>>;

/** Headless Chromium from the system, without the sandbox, GPU or background traffic. */
export async function launchChromium(cleanups: Cleanups): Promise<Browser> {
  const browser = await chromium.launch({
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
  return browser;
}

/** A page that collects console errors, page errors and failed requests (the live stream's cut aside). */
export async function watchedPage(
  browser: Browser,
  opts: { colorScheme?: 'light' | 'dark' } = {},
): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({
    viewport: { width: 1440, height: 900 },
    colorScheme: opts.colorScheme ?? 'light',
  });
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page: ${err.message}`));
  page.on('requestfailed', (req) => {
    // The live stream is cut when the browser closes, and a poll in flight when the page goes.
    if (!req.url().endsWith('/api/live') && !req.url().includes('/api/history'))
      problems.push(`request: ${req.url()} ${req.failure()?.errorText ?? ''}`);
  });
  return { page, problems };
}

export interface Fleet {
  gateway: GatewayProcess;
  /** The gateway's HTTP base URL. */
  base: string;
  cloudUrl: string;
  /** Actions as the cloud received them. */
  atCloud: Collector;
  dataDir: string;
  secretOf: (id: string) => string;
}

export const FLEET_SIM: SimOptions = {
  url: '',
  devices: 60,
  rate: 120,
  durationMs: 3_600_000, // stopped by the cleanups
  seed: 7,
  hotShare: 0.03,
  lowBatteryShare: 0.01,
  humidShare: 0.02,
  heatBursts: 4,
  heatBurstAfterMs: 2_000,
  humidBursts: 3,
  humidBurstAfterMs: 3_000,
};

/**
 * The built gateway (`gateway-id demo`) with a cloud broker and a fleet of simulated devices, each with
 * a secret; `extraProfiles` are imported too (devices the test drives itself, or that never show up).
 */
export async function startFleet(
  cleanups: Cleanups,
  opts: { extraProfiles?: string[]; gatewayArgs?: string[]; sim?: Partial<SimOptions> } = {},
): Promise<Fleet> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const cloud = await startLocalBroker();
  cleanups.push(() => cloud.close());
  const cloudUrl = `mqtt://127.0.0.1:${cloud.address.port}`;
  const atCloud = await Collector.connect(cloudUrl, ['vigil/demo/actions']);
  cleanups.push(() => atCloud.close());
  const dataDir = join(dir.path, 'data');
  const gateway = await startGatewayProcess([
    ...['--mqtt-port', '0', '--http-port', '0', '--data', dataDir],
    ...['--gateway-id', 'demo', '--upstream', cloudUrl],
    ...(opts.gatewayArgs ?? []),
  ]);
  cleanups.push(() => gateway.stop());
  const base = `http://127.0.0.1:${gateway.httpPort}`;

  const sim: SimOptions = { ...FLEET_SIM, ...opts.sim, url: `mqtt://127.0.0.1:${gateway.mqttPort}` };
  const secrets = new Map<string, string>();
  const secretOf = (id: string): string => {
    const secret = secrets.get(id) ?? generateSecret();
    secrets.set(id, secret);
    return secret;
  };
  // The gateway gets only each secret's hash, with the profile, as from the cloud.
  const profiles =
    [...generateProfiles(sim), ...(opts.extraProfiles ?? []).map((id) => ({ id }))]
      .map((p) => JSON.stringify({ ...p, credential: hashSecret(secretOf(p.id)) }))
      .join('\n') + '\n';
  const imported = await fetch(`${base}/api/profiles/import`, { method: 'POST', body: profiles });
  if (imported.status !== 200) throw new Error(`profile import answered ${imported.status}`);
  const stopSim = new AbortController();
  const simRun = runSim(
    { ...sim, credentials: (id) => ({ username: id, password: secretOf(id) }) },
    { signal: stopSim.signal },
  );
  cleanups.push(async () => {
    stopSim.abort();
    await simRun;
  });
  return { gateway, base, cloudUrl, atCloud, dataDir, secretOf };
}
