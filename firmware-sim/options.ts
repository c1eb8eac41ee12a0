import { ConfigError } from '../src/shared/index.js';

export type PayloadFormat = 'json' | 'cbor';

/**
 * What a device does when it goes silent: keep its connection open (only a non-event shows it), send
 * DISCONNECT, or drop the connection without one (the broker sees a lost connection), or a mix of the three.
 */
export type SilentMode = 'stay' | 'disconnect' | 'drop' | 'mixed';

export interface DeviceCredentials {
  username: string;
  password: string;
}

/** What decides the fleet and its profiles. A device's profile depends on these only, not on the fleet size. */
export interface FleetOptions {
  devices: number;
  seed?: number;
  idPrefix?: string;
  /** Sites the devices are spread over; default one per 20 devices. */
  sites?: number;
  /** Customers the devices belong to; default one per 4 devices. */
  customers?: number;
}

/** What decides the traffic: the rate, the readings, and the behaviours the demo needs (all off by default). */
export interface PlanOptions extends FleetOptions {
  /** Telemetry events per second across the whole fleet. */
  rate: number;
  /** How long devices publish; `Infinity` runs until stopped. */
  durationMs: number;
  /** Share of readings above the device's `maxTemp` (and never above 80). */
  hotShare?: number;
  /** Share of readings with a battery below 3.3 V. */
  lowBatteryShare?: number;
  /** Share of readings with humidity above 85 %. */
  humidShare?: number;
  /** Each publishing device sends a heartbeat this often; 0 sends none. */
  heartbeatMs?: number;
  /** Share of the connecting devices that go silent (plain devices, apart from the outage ones). */
  silentShare?: number;
  /** When the silent devices stop, counted from the start of publishing. */
  silentAfterMs?: number;
  /** Silent devices stop at a seeded moment within this span after `silentAfterMs`. */
  silentSpreadMs?: number;
  silentMode?: SilentMode;
  /** Number of sites that lose `outageDevicesPerSite` devices at about the same time. */
  outageSites?: number;
  outageDevicesPerSite?: number;
  outageAfterMs?: number;
  outageSpreadMs?: number;
  /** Number of devices that send a burst of readings above 80. */
  heatBursts?: number;
  heatBurstReadings?: number;
  heatBurstAfterMs?: number;
  /** Number of devices that send a burst of readings with humidity above 85. */
  humidBursts?: number;
  humidBurstReadings?: number;
  humidBurstAfterMs?: number;
  /** Number of devices provisioned (they have a profile) that never connect. */
  neverRegistered?: number;
}

export interface SimOptions extends PlanOptions {
  /** `mqtt://HOST:PORT` of the broker the devices connect to. */
  url: string;
  format?: PayloadFormat;
  qos?: 0 | 1;
  /** Called once per device before it connects; authentication is off when absent. */
  credentials?: (deviceId: string) => DeviceCredentials;
  /** Connections opened at the same time while the fleet connects. */
  connectConcurrency?: number;
  connectTimeoutMs?: number;
  keepaliveS?: number;
  /** Pause before a lost connection is retried; 0 never retries. */
  reconnectMs?: number;
  /** How long the devices stay connected after the last publish, to receive the last commands. */
  lingerMs?: number;
}

/** Defaults of the optional settings; the CLI's help shows the same values. */
export const SIM_DEFAULTS = {
  seed: 1,
  idPrefix: 'dev-',
  devicesPerSite: 20,
  devicesPerCustomer: 4,
  hotShare: 0.05,
  lowBatteryShare: 0.02,
  humidShare: 0,
  heartbeatMs: 0,
  silentShare: 0,
  silentAfterMs: 5_000,
  silentSpreadMs: 0,
  silentMode: 'stay',
  outageSites: 0,
  outageDevicesPerSite: 3,
  outageAfterMs: 5_000,
  outageSpreadMs: 1_000,
  heatBursts: 0,
  heatBurstReadings: 3,
  heatBurstAfterMs: 0,
  humidBursts: 0,
  humidBurstReadings: 2,
  humidBurstAfterMs: 0,
  neverRegistered: 0,
  format: 'json',
  qos: 0,
  connectConcurrency: 100,
  connectTimeoutMs: 10_000,
  keepaliveS: 60,
  reconnectMs: 1_000,
  lingerMs: 500,
} as const satisfies Record<string, string | number>;

const D = SIM_DEFAULTS;

type Resolved<T> = { [K in keyof T]-?: Exclude<T[K], undefined> };
export type ResolvedFleetOptions = Resolved<FleetOptions>;
export type ResolvedPlanOptions = Resolved<PlanOptions>;
export type ResolvedSimOptions = Resolved<Omit<SimOptions, 'credentials'>> & Pick<SimOptions, 'credentials'>;

export function resolveFleetOptions(opts: FleetOptions): ResolvedFleetOptions {
  const devices = count(opts.devices, 'devices', 1);
  return {
    devices,
    seed: integer(opts.seed ?? D.seed, 'seed'),
    idPrefix: text(opts.idPrefix ?? D.idPrefix, 'idPrefix'),
    sites: count(opts.sites ?? Math.ceil(devices / D.devicesPerSite), 'sites', 1),
    customers: count(opts.customers ?? Math.ceil(devices / D.devicesPerCustomer), 'customers', 1),
  };
}

export function resolvePlanOptions(opts: PlanOptions): ResolvedPlanOptions {
  const fleet = resolveFleetOptions(opts);
  const resolved: ResolvedPlanOptions = {
    ...fleet,
    rate: positive(opts.rate, 'rate'),
    durationMs: duration(opts.durationMs, 'durationMs'),
    hotShare: share(opts.hotShare ?? D.hotShare, 'hotShare'),
    lowBatteryShare: share(opts.lowBatteryShare ?? D.lowBatteryShare, 'lowBatteryShare'),
    humidShare: share(opts.humidShare ?? D.humidShare, 'humidShare'),
    heartbeatMs: duration(opts.heartbeatMs ?? D.heartbeatMs, 'heartbeatMs'),
    silentShare: share(opts.silentShare ?? D.silentShare, 'silentShare'),
    silentAfterMs: duration(opts.silentAfterMs ?? D.silentAfterMs, 'silentAfterMs'),
    silentSpreadMs: duration(opts.silentSpreadMs ?? D.silentSpreadMs, 'silentSpreadMs'),
    silentMode: oneOf(opts.silentMode ?? D.silentMode, 'silentMode', ['stay', 'disconnect', 'drop', 'mixed']),
    outageSites: count(opts.outageSites ?? D.outageSites, 'outageSites'),
    outageDevicesPerSite: count(
      opts.outageDevicesPerSite ?? D.outageDevicesPerSite,
      'outageDevicesPerSite',
      1,
    ),
    outageAfterMs: duration(opts.outageAfterMs ?? D.outageAfterMs, 'outageAfterMs'),
    outageSpreadMs: duration(opts.outageSpreadMs ?? D.outageSpreadMs, 'outageSpreadMs'),
    heatBursts: count(opts.heatBursts ?? D.heatBursts, 'heatBursts'),
    heatBurstReadings: count(opts.heatBurstReadings ?? D.heatBurstReadings, 'heatBurstReadings', 1),
    heatBurstAfterMs: duration(opts.heatBurstAfterMs ?? D.heatBurstAfterMs, 'heatBurstAfterMs'),
    humidBursts: count(opts.humidBursts ?? D.humidBursts, 'humidBursts'),
    humidBurstReadings: count(opts.humidBurstReadings ?? D.humidBurstReadings, 'humidBurstReadings', 1),
    humidBurstAfterMs: duration(opts.humidBurstAfterMs ?? D.humidBurstAfterMs, 'humidBurstAfterMs'),
    neverRegistered: count(opts.neverRegistered ?? D.neverRegistered, 'neverRegistered'),
  };
  if (!Number.isFinite(resolved.heartbeatMs)) throw new ConfigError('heartbeatMs must be finite');
  if (resolved.neverRegistered > fleet.devices) {
    throw new ConfigError(`neverRegistered must be at most devices (${fleet.devices})`);
  }
  return resolved;
}

export function resolveSimOptions(opts: SimOptions): ResolvedSimOptions {
  const resolved: ResolvedSimOptions = {
    ...resolvePlanOptions(opts),
    url: brokerUrl(opts.url),
    format: oneOf(opts.format ?? D.format, 'format', ['json', 'cbor']),
    qos: oneOf(opts.qos ?? D.qos, 'qos', [0, 1]),
    connectConcurrency: count(opts.connectConcurrency ?? D.connectConcurrency, 'connectConcurrency', 1),
    connectTimeoutMs: positive(opts.connectTimeoutMs ?? D.connectTimeoutMs, 'connectTimeoutMs'),
    keepaliveS: count(opts.keepaliveS ?? D.keepaliveS, 'keepaliveS'),
    reconnectMs: duration(opts.reconnectMs ?? D.reconnectMs, 'reconnectMs'),
    lingerMs: duration(opts.lingerMs ?? D.lingerMs, 'lingerMs'),
  };
  if (opts.credentials) resolved.credentials = opts.credentials;
  return resolved;
}

function integer(value: number, key: string): number {
  if (!Number.isSafeInteger(value)) throw new ConfigError(`${key} must be an integer, got ${String(value)}`);
  return value;
}

function count(value: number, key: string, min = 0): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ConfigError(`${key} must be an integer of at least ${min}, got ${String(value)}`);
  }
  return value;
}

function positive(value: number, key: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new ConfigError(`${key} must be a number above 0, got ${String(value)}`);
  }
  return value;
}

function duration(value: number, key: string): number {
  if (Number.isNaN(value) || value < 0) {
    throw new ConfigError(`${key} must be a duration of 0 ms or more, got ${String(value)}`);
  }
  return value;
}

function share(value: number, key: string): number {
  if (!(value >= 0 && value <= 1))
    throw new ConfigError(`${key} must be between 0 and 1, got ${String(value)}`);
  return value;
}

function text(value: string, key: string): string {
  if (value.length === 0 || /[+#/\s]/.test(value)) {
    throw new ConfigError(`${key} must be non-empty without '/', '+', '#' or spaces, got '${value}'`);
  }
  return value;
}

function oneOf<T extends string | number>(value: T, key: string, allowed: readonly T[]): T {
  if (!allowed.includes(value)) {
    throw new ConfigError(`${key} must be one of ${allowed.join(', ')}, got ${String(value)}`);
  }
  return value;
}

function brokerUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch (cause) {
    throw new ConfigError(`url must be like mqtt://127.0.0.1:1883, got '${value}'`, { cause });
  }
  if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:', 'ws:', 'wss:'].includes(url.protocol)) {
    throw new ConfigError(`url must use mqtt://, mqtts://, ws:// or wss://, got '${value}'`);
  }
  return value;
}
