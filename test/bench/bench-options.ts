import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { CRASH_ARGS, CRASH_USAGE, crashOptions, type CrashOptions } from './startup-crash.js';
import type { SystemName } from './systems.js';

export interface BenchOptions {
  quick: boolean;
  out: string;
  /** Where the chart goes; next to `out` unless given. */
  svg: string;
  binary: string | undefined;
  systems: SystemName[];
  /** The fixed-rate runs, in order: each system runs each point. */
  points: { qos: 0 | 1; rate: number }[];
  warmupMs: number;
  measureMs: number;
  drainMs: number;
  /** Search each system's maximum sustainable throughput. */
  maxThroughput: boolean;
  probeWarmupMs: number;
  probeMeasureMs: number;
  /** Refinement steps between the last rate that held and the first that did not. */
  probeBisections: number;
  /** The highest p99 a sustainable rate may have. */
  maxP99Ms: number;
  /** A fixed-rate run during which other work kept a CPU busy more than this share of the time is repeated. */
  maxStallPct: number;
  /** Repeats of such a run, at most. */
  retries: number;
  /** Idle device connections for the memory comparison; 0 skips it. */
  idleConnections: number;
  devices: number;
  profiles: number;
  thresholds: number;
  seed: number;
  /** Run the gateway under `--cpu-prof` at this rate (events/s) and write the profile here. */
  cpuProf: { dir: string; rate: number; measureMs: number } | undefined;
  /** aedes without the per-turn write batching Vigil's broker does. */
  aedesPlain: boolean;
  /** The startup section (test/bench/startup.ts): starts per system (0 skips it), whether to `xz -9`, and
   * whether to stop after it. */
  startup: { runs: number; xz: boolean; only: boolean; crash: Omit<CrashOptions, 'log'> };
  /** The write-budget section (test/bench/write-budget.ts): whether it runs, alone, and the idle run's minutes. */
  budget: { run: boolean; only: boolean; idleSettleMs: number; idleMeasureMs: number; measureMs: number };
}

const USAGE = `npm run bench -- [options]

  --quick                 a short run (under two minutes): fewer rates, shorter windows
  --out FILE              results JSON (default test/bench/results/latest.json)
  --svg FILE              latency chart (default: next to --out, .svg)
  --binary FILE           run the single binary rather than node dist/cli.js
  --systems LIST          vigil,vigil-2t,aedes,mosquitto (default all; mosquitto when installed);
                          vigil-2t is Vigil with --threads 2
  --rates LIST            fixed rates in events/s (default 1000,5000,10000,20000)
  --qos LIST              0,1 (default both; --quick: 5000 and 20000 at QoS 0, 5000 at QoS 1)
  --measure SECONDS       measured window of a fixed-rate run (default 15)
  --no-max                skip the maximum-throughput search
  --idle N                idle device connections for the memory comparison (default 10000, quick 1000;
                          0 skips)
  --cpu-prof DIR          profile the gateway (node --cpu-prof) under load and stop there
  --cpu-prof-rate N       events/s while profiling (default 20000)
  --aedes-plain           aedes baseline without write batching (TCP_NODELAY only)
  --startup-runs N        starts per system in the startup section (default 5; 0 skips the section)
  --startup-only          run the startup section alone
  --no-xz                 skip the xz -9 sizes in the startup section (about a minute)
${CRASH_USAGE}
 --budget-only           run the write-budget section alone (bytes written and syncs per event and per idle
                          hour; about 15 minutes, quick 5)
  --no-budget             skip the write-budget section
  --budget-idle MINUTES   idle minutes measured (after 6 minutes connected; quick: 2 after 1) (default 5)
  --retries N             repeats of a fixed-rate run that other work on the machine disturbed
                          (CPU stall over 25%); the calmest attempt is kept (default 1, quick 0)
  --help`;

function list<T>(text: string, parse: (item: string) => T): T[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(parse);
}

function positiveNumber(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} expects a number above 0, got '${text}'`);
  return n;
}

export function parseBenchOptions(argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      svg: { type: 'string' },
      binary: { type: 'string' },
      systems: { type: 'string' },
      rates: { type: 'string' },
      qos: { type: 'string' },
      measure: { type: 'string' },
      'no-max': { type: 'boolean', default: false },
      idle: { type: 'string' },
      'cpu-prof': { type: 'string' },
      'cpu-prof-rate': { type: 'string' },
      'aedes-plain': { type: 'boolean', default: false },
      retries: { type: 'string' },
      'startup-runs': { type: 'string' },
      'startup-only': { type: 'boolean', default: false },
      'no-xz': { type: 'boolean', default: false },
      'budget-only': { type: 'boolean', default: false },
      'no-budget': { type: 'boolean', default: false },
      'budget-idle': { type: 'string' },
      ...CRASH_ARGS,
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  const quick = values.quick;
  const out = values.out ?? fileURLToPath(new URL('./results/latest.json', import.meta.url));
  const systems = values.systems
    ? list(values.systems, (s): SystemName => {
        if (s === 'vigil' || s === 'vigil-2t' || s === 'aedes' || s === 'mosquitto') return s;
        throw new Error(`--systems: unknown system '${s}' (vigil, vigil-2t, aedes, mosquitto)`);
      })
    : (['vigil', 'vigil-2t', 'aedes', 'mosquitto'] as SystemName[]);
  const qos = values.qos
    ? list(values.qos, (q): 0 | 1 => {
        if (q === '0' || q === '1') return Number(q) as 0 | 1;
        throw new Error(`--qos: expected 0 or 1, got '${q}'`);
      })
    : ([0, 1] as (0 | 1)[]);
  const rates = values.rates
    ? list(values.rates, (r) => positiveNumber('--rates', r))
    : [1_000, 5_000, 10_000, 20_000];
  // The quick run keeps the points the targets are set at.
  const points =
    quick && values.rates === undefined && values.qos === undefined
      ? [
          { qos: 0 as const, rate: 5_000 },
          { qos: 0 as const, rate: 20_000 },
          { qos: 1 as const, rate: 5_000 },
        ]
      : qos.flatMap((q) => rates.map((rate) => ({ qos: q, rate })));
  const cpuProfDir = values['cpu-prof'];
  return {
    quick,
    out,
    svg: values.svg ?? out.replace(/\.json$/, '') + '.svg',
    binary: values.binary,
    systems,
    points,
    warmupMs: quick ? 1_000 : 3_000,
    measureMs: values.measure ? positiveNumber('--measure', values.measure) * 1_000 : quick ? 3_000 : 15_000,
    drainMs: 5_000,
    maxThroughput: !values['no-max'],
    probeWarmupMs: quick ? 1_000 : 2_000,
    probeMeasureMs: quick ? 2_000 : 5_000,
    probeBisections: quick ? 0 : 3,
    maxP99Ms: 50,
    maxStallPct: 25,
    retries: values.retries !== undefined ? Number(values.retries) : quick ? 0 : 1,
    idleConnections: values.idle !== undefined ? Number(values.idle) : quick ? 1_000 : 10_000,
    devices: 1_000,
    profiles: 100_000,
    thresholds: 100,
    seed: 1,
    cpuProf:
      cpuProfDir !== undefined
        ? {
            dir: cpuProfDir,
            rate: values['cpu-prof-rate']
              ? positiveNumber('--cpu-prof-rate', values['cpu-prof-rate'])
              : 20_000,
            measureMs: quick ? 5_000 : 15_000,
          }
        : undefined,
    aedesPlain: values['aedes-plain'],
    startup: {
      runs: values['startup-runs'] !== undefined ? Number(values['startup-runs']) : 5,
      xz: !values['no-xz'],
      only: values['startup-only'],
      crash: crashOptions(values),
    },
    budget: {
      run: !values['no-budget'],
      only: values['budget-only'],
      idleSettleMs: quick ? 60_000 : 6 * 60_000,
      idleMeasureMs:
        values['budget-idle'] !== undefined
          ? positiveNumber('--budget-idle', values['budget-idle']) * 60_000
          : quick
            ? 2 * 60_000
            : 5 * 60_000,
      measureMs: quick ? 10_000 : 30_000,
    },
  };
}

export { USAGE };
