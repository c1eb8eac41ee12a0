import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../shared/index.js';
import type { ConfigCache } from './config-cache.js';
import type { Config } from './schema.js';

/** Overrides from the command line, already named as config paths (`mqtt.port`). */
export type Overrides = Record<string, string | number | boolean | undefined>;

/** `VIGIL_*` environment variables and the config path each one sets. */
const ENV_KEYS: Readonly<Record<string, string>> = {
  VIGIL_GATEWAY_ID: 'gatewayId',
  VIGIL_DATA: 'data',
  VIGIL_RULES: 'rules',
  VIGIL_RECORD: 'record',
  VIGIL_MQTT_HOST: 'mqtt.host',
  VIGIL_MQTT_PORT: 'mqtt.port',
  VIGIL_HTTP_HOST: 'http.host',
  VIGIL_HTTP_PORT: 'http.port',
  VIGIL_UPSTREAM: 'upstream.url',
  VIGIL_UPSTREAM_USERNAME: 'upstream.username',
  VIGIL_UPSTREAM_PASSWORD: 'upstream.password',
  VIGIL_LOG_LEVEL: 'log.level',
  VIGIL_ALLOW_ANONYMOUS: 'mqtt.allowAnonymous',
  VIGIL_MQTT_MAX_CONNECTIONS: 'mqtt.maxConnections',
  VIGIL_TLS_PORT: 'mqtt.tls.port',
  VIGIL_TLS_CERT: 'mqtt.tls.cert',
  VIGIL_TLS_KEY: 'mqtt.tls.key',
  VIGIL_TLS_CA: 'mqtt.tls.ca',
  VIGIL_TLS_CRL: 'mqtt.tls.crl',
  VIGIL_HTTP_TOKEN: 'http.token',
  VIGIL_UPSTREAM_CA: 'upstream.tls.ca',
  VIGIL_UPSTREAM_CERT: 'upstream.tls.cert',
  VIGIL_UPSTREAM_KEY: 'upstream.tls.key',
};

/** Paths whose values are numbers, so string overrides from flags and the environment are converted. */
const NUMERIC = new Set([
  'threads',
  'mqtt.port',
  'mqtt.maxPacketBytes',
  'http.port',
  'upstream.inflight',
  'ingest.maxPayloadBytes',
  'outbox.maxCount',
  'outbox.maxBytes',
  'outbox.maxDelivered',
  'profiles.cacheSize',
  'mqtt.maxConnections',
  'mqtt.maxPendingPerAddress',
  'mqtt.maxTopicBytes',
  'mqtt.maxTopicLevels',
  'mqtt.maxSubscriptions',
  'mqtt.publishRate.perSecond',
  'mqtt.publishRate.burst',
  'mqtt.tls.port',
]);

/** Paths whose values are booleans: `true`/`false`, `1`/`0`, `yes`/`no` from flags and the environment. */
const BOOLEAN = new Set(['mqtt.allowAnonymous']);

/**
 * Builds the configuration: defaults, then the YAML file, then `VIGIL_*` variables, then flags.
 * Throws ConfigError naming the key and what is allowed. With a `cache`, a start given the same input as an
 * earlier one takes the configuration that start validated, and zod's schema is not even built
 * (config-cache.ts); otherwise the input is validated and the result kept in the cache.
 */
export async function loadConfig(opts: {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  overrides?: Overrides;
  cache?: ((raw: Record<string, unknown>) => ConfigCache | undefined) | undefined;
}): Promise<Config> {
  let raw: Record<string, unknown> = {};
  if (opts.file !== undefined) raw = await readConfigFile(opts.file);
  const origin = opts.file ?? 'configuration';
  for (const [name, path] of Object.entries(ENV_KEYS)) {
    const value = opts.env?.[name];
    if (value !== undefined && value !== '') setPath(raw, path, coerce(path, value, name));
  }
  for (const [path, value] of Object.entries(opts.overrides ?? {})) {
    if (value !== undefined) setPath(raw, path, coerce(path, value, `--${path}`));
  }
  const cache = opts.cache?.(raw);
  const cached = cache?.read(raw);
  if (cached !== undefined) return cached;
  // The schema (zod) is loaded only here: a start that found its configuration in the cache never builds it.
  const { parseConfig } = await import('./validate.js');
  const config = parseConfig(raw, origin);
  cache?.write(raw, config);
  return config;
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(`cannot read config file ${file}: ${(cause as Error).message}`, { cause });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (cause) {
    throw new ConfigError(`${file}: not valid YAML: ${(cause as Error).message}`, { cause });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(`${file}: expected a mapping of settings at the top level`);
  }
  return doc as Record<string, unknown>;
}

function coerce(path: string, value: string | number | boolean, source: string): unknown {
  if (BOOLEAN.has(path) && typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(word)) return true;
    if (['false', '0', 'no'].includes(word)) return false;
    throw new ConfigError(`${source}: ${path} must be true or false, got "${value}"`);
  }
  if (!NUMERIC.has(path) || typeof value !== 'string') return value;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) {
    throw new ConfigError(`${source}: ${path} must be a number, got "${value}"`);
  }
  return n;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1] ?? path] = value;
}
