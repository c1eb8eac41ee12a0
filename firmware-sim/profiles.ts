import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { resolveFleetOptions, type FleetOptions, type ResolvedFleetOptions } from './options.js';
import { Prng, deriveSeed } from './prng.js';
import { Stream } from './streams.js';

/** The profile the business keeps about a simulated device, as `vigil profiles import` reads it. */
export interface SimProfile {
  id: string;
  maxTemp: number;
  site: string;
  customer: string;
  model: string;
}

/** Each model has its rated temperature; all are below 80 so that plain hot readings stay under it. */
const MODELS = [
  { model: 'th-10', maxTemp: 50 },
  { model: 'th-20', maxTemp: 55 },
  { model: 'env-30', maxTemp: 60 },
  { model: 'cpe-70', maxTemp: 70 },
] as const;

export function deviceId(fleet: ResolvedFleetOptions, index: number): string {
  return `${fleet.idPrefix}${index + 1}`;
}

/** The profile of the device at `index` (0-based); it depends on the seed, sites and customers only. */
export function deviceProfile(fleet: ResolvedFleetOptions, index: number): SimProfile {
  const rng = new Prng(deriveSeed(fleet.seed, Stream.profile, index));
  const { model, maxTemp } = MODELS[rng.int(MODELS.length)] ?? MODELS[0];
  return {
    id: deviceId(fleet, index),
    maxTemp,
    site: `site-${rng.int(fleet.sites) + 1}`,
    customer: `cust-${rng.int(fleet.customers) + 1}`,
    model,
  };
}

/** The profiles of the whole fleet, devices that never register included (the business provisioned them). */
export function generateProfiles(opts: FleetOptions): Iterable<SimProfile> {
  const fleet = resolveFleetOptions(opts);
  return profilesOf(fleet);
}

function* profilesOf(fleet: ResolvedFleetOptions): Generator<SimProfile, void, undefined> {
  for (let i = 0; i < fleet.devices; i++) yield deviceProfile(fleet, i);
}

const LINES_PER_CHUNK = 1_000;

/**
 * Writes the fleet's profiles as NDJSON (one `{"id": …}` per line); resolves to the number written.
 * `extra` adds fields to each line (the credential hash, with a fleet secret).
 */
export async function writeProfilesNdjson(
  path: string,
  opts: FleetOptions,
  extra?: (profile: SimProfile) => Record<string, unknown>,
): Promise<number> {
  const profiles = generateProfiles(opts);
  let written = 0;
  function* chunks(): Generator<string, void, undefined> {
    let lines: string[] = [];
    for (const profile of profiles) {
      lines.push(JSON.stringify(extra ? { ...profile, ...extra(profile) } : profile));
      written++;
      if (lines.length === LINES_PER_CHUNK) {
        yield lines.join('\n') + '\n';
        lines = [];
      }
    }
    if (lines.length > 0) yield lines.join('\n') + '\n';
  }
  await pipeline(Readable.from(chunks()), createWriteStream(path));
  return written;
}
