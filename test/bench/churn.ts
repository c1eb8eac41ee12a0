// `npm run bench:churn`: distinct device ids passing through the gateway with the shipped rules, a few events each,
// with the heap capped as for a 512 MB gateway. Prints the gateway's RSS (and what holds memory: engine groups,
// pending timers, last-seen times) over time, and the peak. Default 100,000 devices; `--full` for 1,000,000.
// See docs/benchmarks.md ("Churn at the target's size"); `--help` for the options.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqttPacket from 'mqtt-packet';
import { startCloudBroker } from './cloud-broker.js';
import { rssMB } from './proc-stats.js';
import { startVigil, type SystemUnderTest } from './systems.js';
import type { VigilSetup } from './vigil-setup.js';

const SHIPPED_RULES = fileURLToPath(new URL('../../rules', import.meta.url));

const USAGE = `npm run bench:churn -- [options]

  --devices N        distinct device ids (default 100000)
  --full             1,000,000 device ids (the target's size) at 1,500 events/s: 500 new devices a second,
                     about 40 minutes
  --events N         events per device (default 3)
  --rate N           events per second (default 5000; 1500 with --full)
  --heap MB          the gateway's --max-old-space-size (default 512, as for a 512 MB gateway)
  --tail MINUTES     minutes sampled after the last event, while the silences fire (default 6; quick 1)
  --every SECONDS    sampling period (default 5)
  --node-flags="…"   more flags for the gateway's node (such as --node-flags=--max-semi-space-size=4)
  --help

The gateway inherits the environment (MALLOC_ARENA_MAX=2 and the like apply to it).`;

interface ChurnOptions {
  devices: number;
  events: number;
  rate: number;
  heapMB: number;
  tailMs: number;
  everyMs: number;
  nodeFlags: string[];
}

function options(argv: string[]): ChurnOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      devices: { type: 'string' },
      full: { type: 'boolean', default: false },
      events: { type: 'string' },
      rate: { type: 'string' },
      heap: { type: 'string' },
      tail: { type: 'string' },
      every: { type: 'string' },
      'node-flags': { type: 'string', default: '' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  const num = (v: string | undefined, d: number): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`expected a number above 0, got '${v}'`);
    return n;
  };
  const devices = num(values.devices, values.full ? 1_000_000 : 100_000);
  return {
    devices,
    events: num(values.events, 3),
    // 500 new device ids a second with --full: a million in half an hour, a busy gateway's churn. Its live set (every
    // device of the last 10 minutes, for hot-average's window) is what a gateway at that churn holds; at 5,000/s it
    // would be every device of the run.
    rate: num(values.rate, values.full ? 1_500 : 5_000),
    heapMB: num(values.heap, 512),
    tailMs: num(values.tail, devices >= 1_000_000 ? 6 : 1) * 60_000,
    everyMs: num(values.every, 5) * 1_000,
    nodeFlags: values['node-flags'].split(/\s+/).filter((f) => f !== ''),
  };
}

interface Sample {
  s: number;
  sent: number;
  rssMB: number;
  heapMB: number;
  /** The V8 heap as committed (used or not), and memory held outside it (buffers, typed arrays). */
  heapTotalMB: number;
  externalMB: number;
  groups: number;
  timers: number;
  lastSeen: number;
  outbox: number;
  refused: number;
  /** Collections that gave unused memory back once quiet (`limits.releaseWhenQuiet`), their pause and what they gave. */
  releases: number;
  releasePauseMs: number;
  releasedMB: number;
  /** Checkpoints written so far (when they come against the collection decides what it gave back at the end). */
  checkpoints: number;
}

function metric(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] === ' ' || rest[0] === '{') total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** An anonymous MQTT connection that publishes QoS 0 for any device id (the gateway allows anonymous clients). */
async function publisher(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      clientId: 'churn-publisher',
      keepalive: 0,
    }),
  );
  // CONNACK, and whatever else comes, is not read for content.
  socket.on('data', () => undefined);
  return socket;
}

/**
 * Device `churn-N` sends `events` telemetry readings, a block of devices at a time (each device's readings a few
 * hundred milliseconds apart), paced to `rate` events per second; waits when the gateway stops reading.
 */
async function drive(socket: Socket, o: ChurnOptions, progress: { sent: number }): Promise<void> {
  const block = 1_000;
  const started = performance.now();
  for (let first = 0; first < o.devices; first += block) {
    const last = Math.min(o.devices, first + block);
    for (let e = 0; e < o.events; e++) {
      const packets: Buffer[] = [];
      for (let i = first; i < last; i++) {
        const temp = 15 + ((i * 7 + e * 13) % 300) / 10;
        packets.push(
          mqttPacket.generate({
            cmd: 'publish',
            topic: `devices/churn-${i}/events/telemetry`,
            payload: Buffer.from(`{"temp":${temp},"bat":3.9}`),
            qos: 0,
            dup: false,
            retain: false,
          }),
        );
      }
      if (socket.destroyed) return;
      if (!socket.write(Buffer.concat(packets)))
        await new Promise((r) => {
          socket.once('drain', r);
          socket.once('close', r);
        });
      progress.sent += packets.length;
      const aheadMs = (progress.sent / o.rate) * 1_000 - (performance.now() - started);
      if (aheadMs > 0) await sleep(aheadMs);
    }
  }
}

async function sample(sut: SystemUnderTest, t0: number, sent: number): Promise<Sample> {
  const text = await sut.metrics();
  return {
    s: Math.round((performance.now() - t0) / 1_000),
    sent,
    rssMB: Math.round(rssMB(sut.pid)),
    heapMB: Math.round(metric(text, 'vigil_nodejs_heap_size_used_bytes') / 1024 / 1024),
    heapTotalMB: Math.round(metric(text, 'vigil_nodejs_heap_size_total_bytes') / 1024 / 1024),
    externalMB: Math.round(metric(text, 'vigil_nodejs_external_memory_bytes') / 1024 / 1024),
    groups: metric(text, 'vigil_engine_groups'),
    timers: metric(text, 'vigil_pending_timers'),
    lastSeen: metric(text, 'vigil_last_seen_devices'),
    outbox: metric(text, 'vigil_outbox_depth'),
    refused: metric(text, 'vigil_queue_refused_total'),
    releases: metric(text, 'vigil_memory_releases_total'),
    releasePauseMs: Math.round(metric(text, 'vigil_memory_release_pause_seconds_total') * 1_000),
    releasedMB: Math.round(metric(text, 'vigil_memory_released_bytes_total') / 1024 / 1024),
    checkpoints: metric(text, 'vigil_checkpoints_total{result="written"}'),
  };
}

function table(samples: readonly Sample[], rows: number): string {
  const step = Math.max(1, Math.ceil(samples.length / rows));
  const picked = samples.filter((_, i) => i % step === 0 || i === samples.length - 1);
  return [
    '| s | events sent | RSS MB | heap used MB | heap total MB | external MB | engine groups | pending timers | last-seen | outbox | refused |',
    '| -: | -: | -: | -: | -: | -: | -: | -: | -: | -: | -: |',
    ...picked.map(
      (p) =>
        `| ${p.s} | ${p.sent.toLocaleString('en-US')} | ${p.rssMB} | ${p.heapMB} | ${p.heapTotalMB} | ${p.externalMB} | ` +
        `${p.groups.toLocaleString('en-US')} | ` +
        `${p.timers.toLocaleString('en-US')} | ${p.lastSeen.toLocaleString('en-US')} | ${p.outbox.toLocaleString('en-US')} | ${p.refused} |`,
    ),
  ].join('\n');
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  if (o === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const log = (m: string): void => void process.stderr.write(`[churn] ${m}\n`);
  const workDir = await mkdtemp(join(tmpdir(), 'vigil-churn-'));
  const cloud = await startCloudBroker();
  let sut: SystemUnderTest | undefined;
  try {
    const configFile = join(workDir, 'vigil.yaml');
    await writeFile(configFile, 'mqtt:\n  allowAnonymous: true\n  publishRate: { perSecond: 0 }\n');
    const data = join(workDir, 'data');
    await mkdir(data);
    const setup: VigilSetup = {
      workDir,
      rulesDir: SHIPPED_RULES,
      shippedRulesDir: SHIPPED_RULES,
      dataTemplate: data,
      configFile,
      importMs: 0,
      thresholds: 0,
      remove: () => rm(workDir, { recursive: true, force: true }),
    };
    sut = await startVigil(setup, {
      cloudUrl: cloud.url,
      rulesDir: SHIPPED_RULES,
      data,
      nodeFlags: [`--max-old-space-size=${o.heapMB}`, ...o.nodeFlags],
    });
    const gateway = sut;
    log(
      `${o.devices.toLocaleString('en-US')} devices × ${o.events} events at ${o.rate}/s, heap capped at ${o.heapMB} MB` +
        `${o.nodeFlags.length > 0 ? ` (${o.nodeFlags.join(' ')})` : ''}` +
        `${process.env.MALLOC_ARENA_MAX !== undefined ? `, MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX}` : ''}, ` +
        `then ${o.tailMs / 60_000} min idle`,
    );
    const socket = await publisher(gateway.url);
    const progress = { sent: 0 };
    const t0 = performance.now();
    const samples: Sample[] = [await sample(gateway, t0, 0)];
    let done = false;
    const driving = drive(socket, o, progress).finally(() => (done = true));
    let tailFrom: number | undefined;
    while (gateway.alive()) {
      await sleep(o.everyMs);
      const s = await sample(gateway, t0, progress.sent).catch(() => undefined);
      // Gone between two samples (out of memory): reported below with what it printed.
      if (s === undefined) break;
      samples.push(s);
      log(
        `${s.s}s sent ${s.sent.toLocaleString('en-US')} RSS ${s.rssMB} MB heap ${s.heapMB}/${s.heapTotalMB} MB ` +
          `external ${s.externalMB} MB groups ${s.groups} ` +
          `timers ${s.timers} last-seen ${s.lastSeen} outbox ${s.outbox} refused ${s.refused} checkpoints ${s.checkpoints}` +
          (s.releases > 0 ? ` releases ${s.releases} (${s.releasePauseMs} ms, ${s.releasedMB} MB)` : ''),
      );
      if (done) tailFrom ??= performance.now();
      if (tailFrom !== undefined && performance.now() - tailFrom >= o.tailMs) break;
    }
    socket.destroy();
    await driving.catch(() => undefined);
    const survived = gateway.alive();
    const peak = samples.reduce((a, b) => (b.rssMB > a.rssMB ? b : a));
    const end = samples.at(-1) as Sample;
    process.stdout.write(
      [
        `## Churn: ${o.devices.toLocaleString('en-US')} device ids × ${o.events} events at ${o.rate}/s, shipped rules, ` +
          `--max-old-space-size=${o.heapMB} ${o.nodeFlags.join(' ')}` +
          `${process.env.MALLOC_ARENA_MAX !== undefined ? ` MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX}` : ''}`,
        '',
        table(samples, 30),
        '',
        `Peak RSS ${peak.rssMB} MB at ${peak.s} s; at the end ${end.rssMB} MB (target ≤ 300 MB); ` +
          (survived ? 'no out-of-memory.' : `the gateway exited:\n${gateway.output().slice(-2_000)}`),
        `Memory given back once quiet: ${end.releases} collection(s), ${end.releasePauseMs} ms of pause in all, ` +
          `${end.releasedMB} MB of RSS.`,
        '',
      ].join('\n'),
    );
  } finally {
    await sut?.stop();
    await cloud.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

await main();
