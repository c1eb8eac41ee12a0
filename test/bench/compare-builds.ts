// Compares gateway builds by CPU and memory allocated per event, the way the hot-path changes in
// docs/benchmarks.md were measured: each build runs the same fixed load in turn, a few rounds, and the median is
// kept. CPU time and allocation per event move far less than latency when other work shares the machine.
// node --import tsx test/bench/compare-builds.ts [--rate N] [--rounds N] [--shipped] [--qos 0|1]
//   [--heap-prof DIR] GATEWAY...
// where each GATEWAY is an executable taking vigil's arguments: a script that `exec`s
// `node some/dist/cli.js "$@"` (so that its pid is the gateway's), or the single binary (no allocation figures:
// it does not read NODE_OPTIONS). `--heap-prof DIR`: after the rounds, one more run per build with V8's sampling
// heap profiler, summarised by allocating function.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { AllocWindow } from './alloc-probe.js';
import { startCloudBroker } from './cloud-broker.js';
import { summarizeHeapProfile } from './heap-profile.js';
import { LoadGenClient } from './load-gen-client.js';
import { measure, type Window } from './measure.js';
import { startVigil, type SystemUnderTest } from './systems.js';
import { benchSecret, prepareVigil } from './vigil-setup.js';

const PROBE = fileURLToPath(new URL('./alloc-probe.ts', import.meta.url));
const WINDOW: Window = { warmupMs: 2_000, measureMs: 10_000, drainMs: 3_000 };
/** Upper bounds of the GC pause histogram, ms. */
const PAUSE_BUCKETS_MS = [0.5, 1, 2, 5, 10];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rate: { type: 'string', default: '8000' },
    rounds: { type: 'string', default: '3' },
    qos: { type: 'string', default: '0' },
    shipped: { type: 'boolean', default: false },
    'heap-prof': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
const USAGE = `Usage: node --import tsx test/bench/compare-builds.ts [options] GATEWAY...

Runs each GATEWAY in turn under the same fixed load, a few rounds, and prints its CPU and bytes allocated per
event, young-generation collections per 1,000 events and a GC pause histogram (medians over the rounds).
A GATEWAY is an executable taking vigil's arguments: a script that \`exec\`s \`node some/dist/cli.js "$@"\`, or the
single binary (no allocation figures).

  --rate N         events/s (default 8000)
  --rounds N       rounds per gateway (default 3)
  --qos 0|1        the devices' QoS (default 0)
  --shipped        the shipped rules alone, without the 100 threshold scenarios
  --heap-prof DIR  one more run per gateway under V8's sampling heap profiler, summarised by function
  --help           this text
`;
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (positionals.length === 0) {
  process.stderr.write(USAGE);
  process.exit(2);
}
const rate = Number(values.rate);
const qos = values.qos === '1' ? 1 : 0;
const fleet = { seed: 1, sites: 5_000, customers: 25_000 };
const secret = benchSecret();

interface Figures {
  cpuUs: number;
  minorPerK: number;
  /** Undefined when the gateway did not load the probe. */
  alloc: (AllocWindow & { events: number }) | undefined;
}

/** The gateway's young-generation collections and device events so far, from its /metrics. */
async function gcAndEvents(sut: SystemUnderTest): Promise<{ minorGcs: number; events: number }> {
  const text = await sut.metrics();
  const sum = (pattern: RegExp): number =>
    [...text.matchAll(pattern)].reduce((total, m) => total + Number(m[1] ?? 0), 0);
  return {
    minorGcs: sum(/^vigil_nodejs_gc_duration_seconds_count\{kind="minor"\} (\S+)$/gm),
    events: sum(/^vigil_events_in_total\{[^}]*source="device"[^}]*\} (\S+)$/gm),
  };
}

/** Opens the probe's window with the CPU sampling window of `measure`, and closes it with it. */
async function allocWindow(sut: SystemUnderTest, out: string): Promise<Figures['alloc']> {
  await sleep(WINDOW.warmupMs);
  if (!existsSync(`${out}.ready`)) return undefined;
  process.kill(sut.pid, 'SIGUSR2');
  const before = await gcAndEvents(sut);
  await sleep(WINDOW.measureMs);
  process.kill(sut.pid, 'SIGUSR2');
  const after = await gcAndEvents(sut);
  for (let i = 0; i < 600 && !existsSync(out); i++) await sleep(50);
  const w = JSON.parse(await readFile(out, 'utf8')) as AllocWindow;
  return { ...w, events: after.events - before.events };
}

async function runOnce(
  gateway: string,
  ctx: { cloudUrl: string; setup: Awaited<ReturnType<typeof prepareVigil>>; dir: string },
  heapProf?: string,
): Promise<Figures> {
  const out = join(ctx.dir, `alloc-${Date.now()}.json`);
  const env = {
    ...process.env,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${PROBE}`.trim(),
    VIGIL_ALLOC_PROBE_OUT: out,
    ...(heapProf !== undefined ? { VIGIL_ALLOC_PROBE_HEAP_PROF: heapProf } : {}),
  };
  const sut = await startVigil(ctx.setup, {
    cloudUrl: ctx.cloudUrl,
    binary: gateway,
    rulesDir: values.shipped ? ctx.setup.shippedRulesDir : ctx.setup.rulesDir,
    env,
  });
  const gen = LoadGenClient.start();
  try {
    await gen.request(
      {
        kind: 'connect',
        url: sut.url,
        devices: 1_000,
        ...fleet,
        mode: 'vigil',
        secret,
        cloudUrl: ctx.cloudUrl,
      },
      'connected',
    );
    const before = await gcAndEvents(sut);
    const [{ record }, alloc] = await Promise.all([
      measure(gen, sut, rate, qos, WINDOW),
      allocWindow(sut, out),
    ]);
    const after = await gcAndEvents(sut);
    const cpuUs = (record.cpuPct / 100 / record.achievedRate) * 1e6;
    // Young-generation collections per 1,000 events: they run each time the nursery fills, so they follow the
    // bytes allocated per event (the nursery's size is the same in both builds).
    const minorPerK = ((after.minorGcs - before.minorGcs) / Math.max(1, after.events - before.events)) * 1000;
    const bytes = alloc ? `${(alloc.allocatedBytes / alloc.events).toFixed(0)} B/event` : 'no probe';
    const worst = alloc ? `${Math.max(0, ...alloc.pausesMs).toFixed(1)} ms` : '–';
    process.stdout.write(
      `${gateway}: ${cpuUs.toFixed(1)} µs CPU/event, ${bytes}, ${minorPerK.toFixed(2)} minor GCs per 1,000 ` +
        `events, longest GC pause ${worst} (CPU ${record.cpuPct}% at ${record.achievedRate}/s), ` +
        `p50 ${record.latencyMs?.p50 ?? '–'} ms, p99 ${record.latencyMs?.p99 ?? '–'} ms, ` +
        `CPU stall ${record.cpuStallPct ?? '–'}%, dropped ${record.dropped}\n`,
    );
    return { cpuUs, minorPerK, alloc };
  } finally {
    await gen.stop();
    await sut.stop();
  }
}

function median(list: readonly number[]): number {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function pauseHistogram(pausesMs: readonly number[]): string {
  const counts = PAUSE_BUCKETS_MS.map(() => 0);
  let over = 0;
  for (const p of pausesMs) {
    const i = PAUSE_BUCKETS_MS.findIndex((b) => p <= b);
    if (i === -1) over++;
    else counts[i] = (counts[i] ?? 0) + 1;
  }
  const cells = PAUSE_BUCKETS_MS.map((b, i) => `≤${b}: ${counts[i]}`);
  return [...cells, `>${PAUSE_BUCKETS_MS[PAUSE_BUCKETS_MS.length - 1]}: ${over}`].join(', ');
}

function report(gateway: string, runs: readonly Figures[]): string {
  const fmt = (list: number[], digits: number): string =>
    `${median(list).toFixed(digits)} (${list.map((v) => v.toFixed(digits)).join(', ')})`;
  const lines = [
    `${gateway}:`,
    `  CPU per event: median ${fmt(
      runs.map((r) => r.cpuUs),
      1,
    )} µs`,
    `  minor GCs per 1,000 events: median ${fmt(
      runs.map((r) => r.minorPerK),
      2,
    )}`,
  ];
  const windows = runs.flatMap((r) => (r.alloc ? [r.alloc] : []));
  if (windows.length > 0) {
    const pauses = windows.flatMap((w) => w.pausesMs);
    lines.push(
      `  allocated per event: median ${fmt(
        windows.map((w) => w.allocatedBytes / w.events),
        0,
      )} B`,
      `  GC pauses, all rounds (${pauses.length}; ${windows.reduce((n, w) => n + w.major, 0)} major): ` +
        `${pauseHistogram(pauses)} ms; longest ${Math.max(0, ...pauses).toFixed(1)} ms`,
    );
  }
  return `${lines.join('\n')}\n`;
}

const setup = await prepareVigil(
  { ...fleet, profiles: 100_000, credentialed: 1_000, secret },
  100,
  positionals[0],
);
const cloud = await startCloudBroker();
const dir = await mkdtemp(join(tmpdir(), 'vigil-compare-'));
const ctx = { cloudUrl: cloud.url, setup, dir };
const runs = new Map<string, Figures[]>();
const profiles: string[] = [];
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const gateway of positionals) {
      runs.set(gateway, [...(runs.get(gateway) ?? []), await runOnce(gateway, ctx)]);
    }
  }
  const profDir = values['heap-prof'];
  if (profDir !== undefined) {
    await mkdir(profDir, { recursive: true });
    for (const [i, gateway] of positionals.entries()) {
      const file = join(profDir, `${i}-${basename(gateway)}.heapprofile`);
      const f = await runOnce(gateway, ctx, file);
      if (f.alloc && existsSync(file)) {
        const estimate = ((f.alloc.sampledBytes ?? NaN) / f.alloc.events).toFixed(0);
        profiles.push(
          `${gateway}: the sampling profiler's own estimate ${estimate} B/event\n\n` +
            (await summarizeHeapProfile(file, f.alloc.events)),
        );
      }
    }
  }
} finally {
  await cloud.stop();
  await setup.remove();
  await rm(dir, { recursive: true, force: true });
}
process.stdout.write(
  '\nMedians (per-round values in brackets). Allocated bytes: growth of the V8 heap between collections plus ' +
    'what each collection freed (v8.GCProfiler), over the CPU window; GC pauses from perf_hooks.\n',
);
for (const [gateway, list] of runs) process.stdout.write(report(gateway, list));
for (const p of profiles) process.stdout.write(`\n${p}`);
