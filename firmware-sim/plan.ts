import { ConfigError } from '../src/shared/index.js';
import { resolvePlanOptions, type PlanOptions, type ResolvedPlanOptions } from './options.js';
import { Prng, deriveSeed, pickDistinct } from './prng.js';
import { deviceProfile, type SimProfile } from './profiles.js';
import { Stream } from './streams.js';

/** How one silent device goes quiet (`mixed` is resolved per device). */
export type SilentHow = 'stay' | 'disconnect' | 'drop';

/** Everything the simulator will do with one device, decided before the run from the seed. */
export interface DevicePlan {
  /** 0-based; the id is `{idPrefix}{index + 1}`. */
  readonly index: number;
  readonly id: string;
  readonly profile: SimProfile;
  /** False for a device that is provisioned (it has a profile) but never connects. */
  readonly registered: boolean;
  /** From this offset into the run it publishes nothing; `Infinity` when it never goes silent. */
  readonly silentAtMs: number;
  readonly silentHow: SilentHow;
  /** Its first reading at or after this offset starts a burst above 80; `Infinity` when none. */
  readonly heatBurstAtMs: number;
  /** Its first reading at or after this offset starts a burst of humidity above 85; `Infinity` when none. */
  readonly humidBurstAtMs: number;
}

export interface OutagePlan {
  readonly site: string;
  /** The devices of that site that go silent, within `outageSpreadMs` of each other. */
  readonly devices: readonly string[];
}

/** The fleet as planned: the same options (and seed) always give the same plan. */
export interface FleetPlan {
  readonly options: ResolvedPlanOptions;
  readonly devices: readonly DevicePlan[];
  /** Ids of the devices that never connect: the ones a business system would report as `provisioned`. */
  readonly neverRegistered: readonly string[];
  /** Devices that go silent on their own (`silentShare`). */
  readonly silent: readonly string[];
  readonly outages: readonly OutagePlan[];
  readonly heatBursts: readonly string[];
  readonly humidBursts: readonly string[];
}

const SILENT_MIX: readonly SilentHow[] = ['stay', 'disconnect', 'drop'];

export function planFleet(opts: PlanOptions): FleetPlan {
  const o = resolvePlanOptions(opts);
  const rng = new Prng(deriveSeed(o.seed, Stream.behaviours, 0));
  const profiles = Array.from({ length: o.devices }, (_, i) => deviceProfile(o, i));
  const all = profiles.map((_, i) => i);

  const neverRegistered = new Set(pickDistinct(all, o.neverRegistered, rng));
  const registered = all.filter((i) => !neverRegistered.has(i));

  const silentAt = new Map<number, number>();
  const outages = planOutages(o, rng, profiles, registered, silentAt);

  const calm = registered.filter((i) => !silentAt.has(i));
  const silent = sorted(pickDistinct(calm, Math.round(o.silentShare * calm.length), rng));
  for (const i of silent) silentAt.set(i, o.silentAfterMs + Math.floor(rng.between(0, o.silentSpreadMs)));

  const steady = registered.filter((i) => !silentAt.has(i));
  const heat = sorted(pickDistinct(steady, needAtMost(o.heatBursts, steady.length, 'heatBursts'), rng));
  const humid = sorted(pickDistinct(steady, needAtMost(o.humidBursts, steady.length, 'humidBursts'), rng));
  const heatSet = new Set(heat);
  const humidSet = new Set(humid);

  const silentHow = new Map<number, SilentHow>();
  sorted([...silentAt.keys()]).forEach((i, n) => {
    silentHow.set(i, o.silentMode === 'mixed' ? (SILENT_MIX[n % SILENT_MIX.length] ?? 'stay') : o.silentMode);
  });

  const devices = profiles.map((profile, index): DevicePlan => ({
    index,
    id: profile.id,
    profile,
    registered: !neverRegistered.has(index),
    silentAtMs: silentAt.get(index) ?? Infinity,
    silentHow: silentHow.get(index) ?? 'stay',
    heatBurstAtMs: heatSet.has(index) ? o.heatBurstAfterMs : Infinity,
    humidBurstAtMs: humidSet.has(index) ? o.humidBurstAfterMs : Infinity,
  }));
  const idOf = (i: number): string => profiles[i]?.id ?? '';
  return {
    options: o,
    devices,
    neverRegistered: sorted([...neverRegistered]).map(idOf),
    silent: silent.map(idOf),
    outages: outages.map((site) => ({ site: site.site, devices: site.devices.map(idOf) })),
    heatBursts: heat.map(idOf),
    humidBursts: humid.map(idOf),
  };
}

/** Picks the sites that lose devices, among those with enough devices that connect, and when each goes. */
function planOutages(
  o: ResolvedPlanOptions,
  rng: Prng,
  profiles: readonly SimProfile[],
  registered: readonly number[],
  silentAt: Map<number, number>,
): { site: string; devices: number[] }[] {
  if (o.outageSites === 0) return [];
  const bySite = new Map<string, number[]>();
  for (const i of registered) {
    const site = profiles[i]?.site ?? '';
    const list = bySite.get(site);
    if (list) list.push(i);
    else bySite.set(site, [i]);
  }
  const eligible = [...bySite.keys()]
    .filter((site) => (bySite.get(site)?.length ?? 0) >= o.outageDevicesPerSite)
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (eligible.length < o.outageSites) {
    throw new ConfigError(
      `outageSites: only ${eligible.length} sites have ${o.outageDevicesPerSite} devices that connect; ` +
        `use fewer outage sites, fewer sites or more devices`,
    );
  }
  return pickDistinct(eligible, o.outageSites, rng)
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    .map((site) => {
      const devices = sorted(pickDistinct(bySite.get(site) ?? [], o.outageDevicesPerSite, rng));
      for (const i of devices)
        silentAt.set(i, o.outageAfterMs + Math.floor(rng.between(0, o.outageSpreadMs)));
      return { site, devices };
    });
}

function needAtMost(wanted: number, available: number, key: string): number {
  if (wanted > available) {
    throw new ConfigError(`${key}: ${wanted} devices asked for, only ${available} connect and stay`);
  }
  return wanted;
}

function sorted(indices: number[]): number[] {
  return indices.sort((a, b) => a - b);
}
