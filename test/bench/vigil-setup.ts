import { createHmac, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { generateProfiles } from '../../firmware-sim/index.js';
import { runToEnd } from './child-process.js';

const SHIPPED_RULES = fileURLToPath(new URL('../../rules/', import.meta.url));
/** The built CLI (`npm run build`). */
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** The fleet's shape: the devices that connect are the first ones of the profiles imported. */
export interface FleetShape {
  profiles: number;
  /** The first this many devices get a credential (the shared `secret`); the others only a profile. */
  credentialed: number;
  secret: string;
  seed: number;
  sites: number;
  customers: number;
}

/** What every start of the gateway copies: rules directories and a data directory with the profiles in it. */
export interface VigilSetup {
  readonly workDir: string;
  /** The shipped scenarios (no policy) plus the threshold scenarios. */
  readonly rulesDir: string;
  /** The shipped scenarios alone (no policy). */
  readonly shippedRulesDir: string;
  readonly dataTemplate: string;
  /** A config file for `vigil run --config`: the limits a benchmark must lift (see `gatewayConfig`). */
  readonly configFile: string;
  readonly importMs: number;
  readonly thresholds: number;
  remove(): Promise<void>;
}

/**
 * Builds the rules directories and imports the profiles once, through the CLI as a user would
 * (`vigil profiles import`).
 */
export async function prepareVigil(
  fleet: FleetShape,
  thresholds: number,
  binary: string | undefined,
): Promise<VigilSetup> {
  const workDir = await mkdtemp(join(tmpdir(), 'vigil-bench-'));
  try {
    const shippedRulesDir = join(workDir, 'rules-shipped');
    const rulesDir = join(workDir, 'rules');
    await copyShippedRules(shippedRulesDir);
    await copyShippedRules(rulesDir);
    await writeFile(join(rulesDir, 'bench-thresholds.yaml'), thresholdScenarios(thresholds));

    const profiles = join(workDir, 'profiles.ndjson');
    await writeProfiles(profiles, fleet);
    const configFile = join(workDir, 'vigil.yaml');
    await writeFile(configFile, await gatewayConfig(binary));
    const dataTemplate = join(workDir, 'data-template');
    const started = performance.now();
    const [command, args] = binary !== undefined ? [binary, [] as string[]] : [process.execPath, [CLI]];
    await runToEnd(command, [...args, 'profiles', 'import', profiles, '--data', dataTemplate]);
    const importMs = performance.now() - started;
    await rm(profiles);
    return {
      workDir,
      rulesDir,
      shippedRulesDir,
      dataTemplate,
      configFile,
      importMs,
      thresholds,
      remove: () => rm(workDir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The simulator's profiles as NDJSON for `vigil profiles import`, with a `credential` (the hash of the shared
 * secret, salted per device) on the devices that connect, as the cloud would provision them.
 */
async function writeProfiles(path: string, fleet: FleetShape): Promise<void> {
  let index = 0;
  function* lines(): Generator<string, void, undefined> {
    let chunk: string[] = [];
    for (const profile of generateProfiles({
      devices: fleet.profiles,
      seed: fleet.seed,
      sites: fleet.sites,
      customers: fleet.customers,
    })) {
      const line =
        index++ < fleet.credentialed ? { ...profile, credential: credentialHash(fleet.secret) } : profile;
      chunk.push(JSON.stringify(line));
      if (chunk.length === 1_000) {
        yield chunk.join('\n') + '\n';
        chunk = [];
      }
    }
    if (chunk.length > 0) yield chunk.join('\n') + '\n';
  }
  await pipeline(Readable.from(lines()), createWriteStream(path));
}

/**
 * A credential hash as `vigil devices hash` prints it (`hmac-sha256$SALT$MAC`, base64url, MAC = HMAC-SHA-256
 * keyed with the salt over the secret): the form the cloud sends with a profile import.
 */
export function credentialHash(secret: string): string {
  const salt = randomBytes(16);
  const mac = createHmac('sha256', salt).update(secret, 'utf8').digest();
  return `hmac-sha256$${salt.toString('base64url')}$${mac.toString('base64url')}`;
}

/** A fresh random secret for the run's devices. */
export function benchSecret(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * The gateway's configuration for a benchmark: its per-device publish rate limit (100/s by default) would drop
 * events at the top rates, where 1,000 devices send 100 or more a second each, its connection limit
 * (10,000) would refuse the idle-connection test's last ones. Both are lifted, not turned off, so their cost per
 * publish and per connection stays in the figures. The limit of connections without CONNECT per address (1,000)
 * stays as shipped: a reconnect storm comes from many source addresses (test/bench/startup-crash.ts), and the
 * other tests open at most 200 connections at a time. Keys the built gateway does not know yet are left out.
 */
async function gatewayConfig(binary: string | undefined): Promise<string> {
  const source = await readFile(
    binary ?? fileURLToPath(new URL('../../dist/src/config/schema.js', import.meta.url)),
  );
  const knows = (key: string): boolean => source.includes(key);
  const mqtt: string[] = [];
  if (knows('maxConnections')) mqtt.push('  maxConnections: 50000');
  if (knows('publishRate')) mqtt.push('  publishRate: { perSecond: 1000000, burst: 1000000 }');
  return mqtt.length > 0 ? `mqtt:\n${mqtt.join('\n')}\n` : '{}\n';
}

/**
 * The shipped scenario files and templates, without `policy.yaml`: its cooldown (10 minutes) and contact cap
 * (2 an hour per device) would suppress nearly every repeated action of a device in a run of seconds.
 */
async function copyShippedRules(to: string): Promise<void> {
  await mkdir(join(to, 'templates'), { recursive: true });
  for (const entry of await readdir(SHIPPED_RULES, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.yaml') && entry.name !== 'policy.yaml') {
      await copyFile(join(SHIPPED_RULES, entry.name), join(to, entry.name));
    }
  }
  for (const name of await readdir(join(SHIPPED_RULES, 'templates'))) {
    await copyFile(join(SHIPPED_RULES, 'templates', name), join(to, 'templates', name));
  }
}

/**
 * `n` scenarios from the shipped `threshold` template on telemetry, on temperature and humidity alternately,
 * with limits above anything the simulator sends by default (temperatures stay under 80, humidity under 85):
 * every telemetry event evaluates each of them, and none of them fires, so they add the cost of many similar
 * conditions without adding actions.
 */
export function thresholdScenarios(n: number): string {
  const lines = ['# Generated by test/bench for the benchmark.'];
  for (let i = 0; i < n; i++) {
    const onTemp = i % 2 === 0;
    const limit = onTemp ? 81 + Math.floor(i / 2) : 86 + Math.floor(i / 2);
    lines.push(
      `- id: bench-threshold-${i + 1}`,
      `  description: ${onTemp ? 'Temperature' : 'Humidity'} above ${limit}, ${1 + (i % 3)} times within ${1 + (i % 5)} minutes.`,
      '  use: threshold',
      `  with: { metric: ${onTemp ? 'temp' : 'hum'}, limit: ${limit}, count: ${1 + (i % 3)}, within: ${1 + (i % 5)}m }`,
      '  priority: 20',
      '  category: maintenance',
      '  then:',
      `    action: bench-threshold-${i + 1}`,
      '    to: [upstream]',
    );
  }
  return lines.join('\n') + '\n';
}
