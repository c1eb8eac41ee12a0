import type { EventEmitter } from 'node:events';
import { join, resolve } from 'node:path';
import { isSea } from 'node:sea';
import type { Command } from 'commander';
import { configCacheIn, type ConfigCache } from '../config/config-cache.js';
import { loadConfig, type Overrides } from '../config/load.js';
import { startGateway } from '../app/index.js';
import { exitWithError, parsePort } from './util.js';
import type { Logger } from 'pino';
import { buildInfo, releaseVersion } from '../shared/index.js';
import { DATA_CACHE_DIR } from '../shared/cache-folder.js';
import { RELEASE_MAX_HEAP_USED, releaseStartMemory } from './release-start-memory.js';
import { STARTED_EVENT } from './started-event.js';

interface RunFlags {
  config?: string;
  data?: string;
  rules?: string;
  mqttPort?: number;
  mqttHost?: string;
  httpPort?: number;
  httpHost?: string;
  upstream?: string;
  gatewayId?: string;
  record?: string;
  threads?: number;
  logLevel?: string;
  allowAnonymous?: boolean;
  tlsPort?: number;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsCrl?: string;
  upstreamCa?: string;
  upstreamCert?: string;
  upstreamKey?: string;
  trustedKey: string[];
}

export function registerRunCommand(program: Command): void {
  addRunOptions(program.command('run'))
    .addHelpText(
      'after',
      '\nEnvironment: VIGIL_DATA, VIGIL_RULES, VIGIL_MQTT_PORT, VIGIL_HTTP_PORT, VIGIL_UPSTREAM, VIGIL_GATEWAY_ID,\n' +
        'VIGIL_LOG_LEVEL and more override the config file; flags override both.',
    )
    .action(async (flags: RunFlags) => {
      try {
        await run(flags);
      } catch (err) {
        exitWithError(err);
      }
    });
}

function addRunOptions(cmd: Command): Command {
  return cmd
    .description('start the gateway: embedded MQTT broker, scenarios, outbox and local HTTP API')
    .option('-c, --config <file>', 'YAML config file (flags and VIGIL_* variables override it)')
    .option('--data <dir>', 'data directory for LevelDB (default ./data)')
    .option('--rules <dir>', 'rules directory (default: the rules shipped with the gateway)')
    .option('--mqtt-port <n>', 'MQTT port for devices, 0 picks a free one (default 1883)', parsePort)
    .option('--mqtt-host <addr>', 'address the MQTT listener binds (default 0.0.0.0)')
    .option(
      '--http-port <n>',
      'HTTP port for health, metrics and the API, 0 picks one (default 8080)',
      parsePort,
    )
    .option('--http-host <addr>', 'address the HTTP listener binds (default 127.0.0.1)')
    .option('--upstream <url>', 'cloud broker URL, e.g. mqtt://cloud.example:1883 (default: none)')
    .option('--gateway-id <id>', 'gateway id used in upstream topics (default vigil)')
    .option('--record <file>', 'append every ingested event to this NDJSON file, for `vigil replay`')
    .option('--threads <n>', '1, or 2: the device edge on a thread of its own (default 1)', Number)
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)')
    .option('--allow-anonymous', 'let devices connect without credentials: for development only')
    .option('--tls-cert <file>', 'PEM certificate: opens a TLS listener for devices (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option(
      '--tls-ca <file>',
      'PEM CA: devices then need a client certificate; its common name is the device id',
    )
    .option(
      '--tls-crl <file>',
      'PEM CRL of --tls-ca: revoked client certificates are refused; reloaded on change',
    )
    .option('--tls-port <n>', 'port of the TLS listener, 0 picks a free one (default 8883)', parsePort)
    .option('--upstream-ca <file>', 'PEM CA to trust for an mqtts:// upstream, beyond the system ones')
    .option('--upstream-cert <file>', 'PEM client certificate for the upstream (with --upstream-key)')
    .option('--upstream-key <file>', 'PEM private key of --upstream-cert')
    .option(
      '--trusted-key <file>',
      'Ed25519 public key (PEM) whose signed rule bundles are accepted; repeat for several',
      (value: string, previous: string[]) => [...previous, value],
      [],
    );
}

/**
 * The single executable keeps the configuration it validated in the data directory's cache folder, beside its
 * addons and code cache, for the next start with the same input (config-cache.ts). `node dist/cli.js` validates at
 * every start: its modules may change under the same version.
 */
function validatedConfigCache(raw: Record<string, unknown>): ConfigCache | undefined {
  const bundle = isSea() ? buildInfo().bundle : undefined;
  if (bundle === undefined) return undefined;
  // Where the data directory will be; an invalid `data` is validation's to report.
  const data = raw.data === undefined ? './data' : raw.data;
  if (typeof data !== 'string' || data === '') return undefined;
  return configCacheIn(join(resolve(data), DATA_CACHE_DIR), bundle);
}

/** Starts the gateway, stops it on SIGTERM and SIGINT, reloads its rules on SIGHUP. */
async function run(flags: RunFlags): Promise<void> {
  let logger: Logger | undefined;
  keepServingWhenOutputCloses((err, name) => logger?.error({ err }, `writing to ${name} failed`));
  const loaded = await loadConfig({
    file: flags.config,
    env: process.env,
    overrides: overridesOf(flags),
    cache: validatedConfigCache,
  });
  // A list, which overrides cannot carry: the flags replace the config file's sync.trustedKeys.
  const config =
    flags.trustedKey.length > 0
      ? { ...loaded, sync: { ...loaded.sync, trustedKeys: flags.trustedKey } }
      : loaded;
  const gateway = await startGateway(config, { version: releaseVersion() });
  logger = gateway.logger;
  // Handlers first: a supervisor may signal as soon as it reads the ports below.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    gateway.logger.info({ signal }, 'stopping');
    gateway.stop().then(
      () => process.exit(0),
      (err: unknown) => exitWithError(err),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // A fault nothing caught may have left state half changed: say so in the log and exit, so that the
  // supervisor (systemd) restarts the gateway, which recovers from its journal. Never silently.
  const fatal = (what: string) => (err: unknown) => {
    gateway.logger.fatal(
      { err },
      `${what}: exiting so that the gateway restarts and recovers from its journal`,
    );
    process.exit(70);
  };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled rejection'));
  // The bound ports on stdout, one per line, for people and for scripts (port 0 picks one).
  process.stdout.write(`mqtt listening on ${gateway.mqtt.host}:${gateway.mqtt.port}\n`);
  if (gateway.mqtts) process.stdout.write(`mqtts listening on ${gateway.mqtts.host}:${gateway.mqtts.port}\n`);
  if (config.mqtt.allowAnonymous) {
    process.stderr.write(
      'WARNING: anonymous devices are allowed (--allow-anonymous): anyone who reaches the MQTT port can\n' +
        'connect without credentials and publish events as any device. Never use this in production.\n',
    );
  }
  process.stdout.write(`http listening on ${gateway.http.host}:${gateway.http.port}\n`);
  // Recovered, the start is over: what it committed and left as garbage goes back (docs/benchmarks.md, "Memory
  // with idle device connections"). A failed recovery is reported where it fails.
  gateway.recovered.then(
    () => {
      // First what the start leaves for the next one (the executable's code cache), so that the collection
      // below takes the garbage of that too.
      const events: EventEmitter = process;
      events.emit(STARTED_EVENT);
      releaseStartGarbage(gateway.logger);
    },
    () => undefined,
  );
  // The local rules directory again, compiled whole and swapped in between two events (docs/sync.md).
  process.on('SIGHUP', () => {
    gateway.reloadRules().catch((err: unknown) => gateway.logger.error({ err }, 'rules reload failed'));
  });
}

/**
 * Standard output and error are for people and log collectors, not for the gateway's work. When their reader goes
 * away (a pipe into `head`, a log shipper that died), a write fails with EPIPE, which Node reports as an `error`
 * event; unhandled, it would end the gateway as an uncaught exception. The gateway keeps serving instead: what it
 * would have printed is dropped (pino, on EPIPE, stops writing its own lines as well). Any other failure is reported.
 */
function keepServingWhenOutputCloses(report: (err: Error, name: string) => void): void {
  const outputs = [
    ['standard output', process.stdout],
    ['standard error', process.stderr],
  ] as const;
  for (const [name, stream] of outputs) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') report(err, name);
    });
  }
}

function releaseStartGarbage(logger: Logger): void {
  const before = process.memoryUsage.rss();
  const startedMs = performance.now();
  if (!releaseStartMemory(RELEASE_MAX_HEAP_USED)) return;
  const mb = (bytes: number) => Math.round(bytes / 104_857.6) / 10;
  logger.debug(
    { rssMB: mb(process.memoryUsage.rss()), releasedMB: mb(before - process.memoryUsage.rss()) },
    `start garbage collected in ${Math.round(performance.now() - startedMs)} ms`,
  );
}

/** The flags that set a config path, named by that path. */
function overridesOf(flags: RunFlags): Overrides {
  return {
    data: flags.data,
    rules: flags.rules,
    record: flags.record,
    threads: flags.threads,
    'mqtt.port': flags.mqttPort,
    'mqtt.host': flags.mqttHost,
    'http.port': flags.httpPort,
    'http.host': flags.httpHost,
    'upstream.url': flags.upstream,
    gatewayId: flags.gatewayId,
    'log.level': flags.logLevel,
    'mqtt.allowAnonymous': flags.allowAnonymous,
    'mqtt.tls.port': flags.tlsPort,
    'mqtt.tls.cert': flags.tlsCert,
    'mqtt.tls.key': flags.tlsKey,
    'mqtt.tls.ca': flags.tlsCa,
    'mqtt.tls.crl': flags.tlsCrl,
    'upstream.tls.ca': flags.upstreamCa,
    'upstream.tls.cert': flags.upstreamCert,
    'upstream.tls.key': flags.upstreamKey,
  };
}
