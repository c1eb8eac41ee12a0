// Benchmarks the pure scenario engine on virtual time: events/s on one core with the shipped rules plus
// threshold-template scenarios, per-event cost as scenarios grow, memory per tracked device, and the
// timer queue holding a million pending silence timers. Prints markdown; writes test/bench/results/engine.json.
// node --expose-gc --import tsx test/bench/engine.ts [--quick] [--out FILE]
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Engine, kindOf, parseTimerKey, TimerQueue } from '../../src/engine/index.js';
import type { Effect } from '../../src/engine/index.js';
import { loadRulesDir, shippedRulesDir, TEMPLATES_DIR } from '../../src/rules/index.js';
import type { RuleSet } from '../../src/rules/index.js';
import { formatProblem } from '../../src/shared/index.js';
import type { Event, Profile } from '../../src/shared/index.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: fileURLToPath(new URL('./results/engine.json', import.meta.url)) },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`Usage: npm run bench:engine -- [options]

The pure scenario engine on virtual time (docs/benchmarks-engine.md): events per CPU-second on one core with the
shipped rules and 100 threshold scenarios, the cost per event as scenarios grow, memory per device, and the timer
queue holding a million pending silence timers. Prints markdown tables.

  --quick      a tenth of the fleet, about 15 seconds (the full run takes about two minutes)
  --out FILE   results JSON (default test/bench/results/engine.json)
  --help       this text
`);
  process.exit(0);
}

const gcFn = globalThis.gc;
if (typeof gcFn !== 'function') {
  console.error('run with node --expose-gc: memory is measured after a full collection');
  process.exit(2);
}
const collect = (): void => gcFn();

const QUICK = args.quick;
const CONFIG = {
  /** Threshold scenarios added to the shipped ones for the main run. */
  thresholds: 100,
  /** Devices sending telemetry, one reading per period each. */
  activeDevices: QUICK ? 10_000 : 100_000,
  /** Devices that sent one heartbeat and went quiet: together with the active ones, one silence timer each. */
  silentDevices: QUICK ? 90_000 : 900_000,
  periodMs: 60_000,
  /** Rounds (one reading per active device) before measuring: 10 fill hot-average's 10-minute window. */
  warmupRounds: QUICK ? 3 : 10,
  /** Measured rounds; with the silent fleet's heartbeats in the round before, none of its timers falls due. */
  measuredRounds: QUICK ? 2 : 4,
  /** Per-event cost as scenarios grow: threshold scenarios added to the shipped ones. */
  scaling: [0, 10, 100, 1000],
  scalingDevices: QUICK ? 2_000 : 10_000,
  scalingWarmupMs: QUICK ? 300 : 3_000,
  scalingMeasureMs: QUICK ? 1_000 : 5_000,
  /** Size of the timer queue micro-benchmark. */
  queueTimers: QUICK ? 100_000 : 1_000_000,
  batch: 1_000,
  profiles: 1_000,
} as const;

// ---------------------------------------------------------------------------------------------------------
// The fleet: seeded, so two runs see the same events.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * Metrics a generated threshold scenario watches, with the range devices report them in. Temperature is
 * left to the shipped scenarios: a hot device would trip every temperature threshold on every reading.
 */
const METRICS = [
  { name: 'hum', lo: 30, hi: 90 },
  { name: 'co2', lo: 400, hi: 2000 },
  { name: 'pm25', lo: 5, hi: 100 },
  { name: 'noise', lo: 30, hi: 90 },
  { name: 'vib', lo: 0, hi: 10 },
  { name: 'amps', lo: 0, hi: 16 },
  { name: 'load', lo: 0, hi: 100 },
  { name: 'flow', lo: 0, hi: 50 },
] as const;

/** device-offline's `for: 5m`. */
const SILENCE_MS = 300_000;

const tenth = (x: number): number => Math.round(x * 10) / 10;
const deviceId = (i: number): string => `dev-${String(i).padStart(7, '0')}`;
const deviceIndex = (id: string): number => Number(id.slice(4));

/** Profiles are shared by index: the engine never keeps them, and the store's cache is not under test. */
const PROFILES: Profile[] = Array.from({ length: CONFIG.profiles }, (_, k) => ({
  site: `site-${String(k).padStart(4, '0')}`,
  maxTemp: 50 + (k % 21),
  model: ['s-100', 's-200', 'm-300', 'router-x'][k % 4],
}));
const profileOf = (i: number): Profile => PROFILES[i % PROFILES.length] as Profile;

/**
 * One telemetry reading. 1% of devices run hot (overheat, overheat-sustained and hot-average fire for them)
 * and 2% have a low battery (low-battery fires on each of their readings).
 */
function telemetry(rand: () => number, i: number, at: number): Event {
  const hot = i % 100 === 7;
  const lowBattery = i % 50 === 3;
  const data: Record<string, unknown> = {
    temp: tenth(15 + 30 * rand() + (hot ? 40 : 0)),
    hum: tenth(30 + 60 * rand()),
    bat: tenth(lowBattery ? 3.0 + 0.2 * rand() : 3.5 + 0.7 * rand()),
    rssi: Math.round(-90 + 50 * rand()),
    co2: Math.round(400 + 1600 * rand()),
    pm25: tenth(5 + 95 * rand()),
    noise: tenth(30 + 60 * rand()),
    vib: tenth(10 * rand()),
    amps: tenth(16 * rand()),
    load: Math.round(100 * rand()),
    flow: tenth(50 * rand()),
  };
  return { actor: deviceId(i), type: 'telemetry', at, data, source: 'device' };
}

function heartbeat(i: number, at: number): Event {
  return { actor: deviceId(i), type: 'heartbeat', at, data: {}, source: 'device' };
}

/** Visits the active devices in a fixed shuffled order: a stride coprime with their number. */
function strideFor(n: number): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let s = 7919;
  while (gcd(s, n) !== 1) s += 2;
  return s;
}

/**
 * Events in arrival order: round `r` holds one reading per active device, spread evenly over the period;
 * with `silent`, the silent fleet's heartbeats are interleaved into it by time.
 */
function* rounds(
  rand: () => number,
  active: number,
  fromRound: number,
  toRound: number,
  silent?: { first: number; count: number; round: number },
): Generator<{ ev: Event; device: number }> {
  const stride = strideFor(active);
  const period = CONFIG.periodMs;
  for (let r = fromRound; r < toRound; r++) {
    const start = r * period;
    const quiet = silent?.round === r ? silent : undefined;
    let j = 0;
    for (let k = 0; k < active; k++) {
      const at = start + Math.floor((k * period) / active);
      while (quiet && j < quiet.count && start + Math.floor((j * period) / quiet.count) < at) {
        const device = quiet.first + j;
        yield { ev: heartbeat(device, start + Math.floor((j * period) / quiet.count)), device };
        j++;
      }
      const device = (k * stride) % active;
      yield { ev: telemetry(rand, device, at), device };
    }
    while (quiet && j < quiet.count) {
      const device = quiet.first + j;
      yield { ev: heartbeat(device, start + Math.floor((j * period) / quiet.count)), device };
      j++;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Rules: the shipped directory plus generated `use: threshold` scenarios, loaded as the gateway loads them.

function thresholdRule(i: number): string {
  const m = METRICS[i % METRICS.length] as (typeof METRICS)[number];
  // Limits between the 99.8th and 99.98th percentile of the metric: each holds for about one reading in a
  // thousand, so that a thousand thresholds on one reading still decide a few actions, not a flood.
  const q = 0.998 + (0.0018 * ((i * 37) % 100)) / 100;
  const id = `bench-threshold-${String(i).padStart(4, '0')}`;
  return [
    `id: ${id}`,
    `description: ${m.name} above ${tenth(m.lo + (m.hi - m.lo) * q)} (generated for the engine benchmark).`,
    'use: threshold',
    `with: { metric: ${m.name}, limit: ${tenth(m.lo + (m.hi - m.lo) * q)}, count: ${1 + (i % 3)}, within: ${['1m', '2m', '5m', '10m'][i % 4]} }`,
    `priority: ${20 + (i % 50)}`,
    'category: maintenance',
    'then:',
    `  action: check-${m.name}`,
    '  to: [upstream]',
    '',
  ].join('\n');
}

async function loadRules(thresholds: number): Promise<RuleSet> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-bench-engine-'));
  try {
    const shipped = shippedRulesDir();
    const yaml = (names: string[]): string[] => names.filter((n) => /\.ya?ml$/i.test(n));
    for (const name of yaml(await readdir(shipped))) await copyFile(join(shipped, name), join(dir, name));
    await mkdir(join(dir, TEMPLATES_DIR));
    for (const name of yaml(await readdir(join(shipped, TEMPLATES_DIR))))
      await copyFile(join(shipped, TEMPLATES_DIR, name), join(dir, TEMPLATES_DIR, name));
    for (let i = 0; i < thresholds; i++)
      await writeFile(join(dir, `bench-threshold-${String(i).padStart(4, '0')}.yaml`), thresholdRule(i));
    const result = await loadRulesDir(dir);
    if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
    return result.rules;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Scenarios that look at an event of `type` published by a device (`absent: any` sees all of those). */
const listenersOf = (rules: RuleSet, type: string): number =>
  rules.scenarios.filter((s) => s.listens.includes(type) || kindOf(s.when).hearsDevice?.(s.when) === true)
    .length;

// ---------------------------------------------------------------------------------------------------------
// Driving the engine as the runtime does (pipeline.ts, replay.ts): effects applied to the timer queue.

interface Tally {
  events: number;
  engineMs: number;
  queueMs: number;
  /** The main thread's CPU time: what the work costs on one core, whatever else the machine runs. */
  engineCpuMs: number;
  queueCpuMs: number;
  decided: number;
  emitted: number;
  errors: number;
  timersFired: number;
}

const emptyTally = (): Tally => ({
  events: 0,
  engineMs: 0,
  queueMs: 0,
  engineCpuMs: 0,
  queueCpuMs: 0,
  decided: 0,
  emitted: 0,
  errors: 0,
  timersFired: 0,
});

interface Rate {
  /** Per second of the main thread's CPU time: the cost on one core. */
  perSecond: number;
  usEach: number;
  /** Per second of wall time; lower than `perSecond` when other work shared the machine. */
  perSecondWall: number;
}

function rate(count: number, wallMs: number, cpuMillis: number): Rate {
  return {
    perSecond: (count / cpuMillis) * 1000,
    usEach: (cpuMillis * 1000) / count,
    perSecondWall: (count / wallMs) * 1000,
  };
}

const cpuMs = (from: NodeJS.CpuUsage, to: NodeJS.CpuUsage): number =>
  (to.user - from.user + to.system - from.system) / 1000;

function apply(queue: TimerQueue, effects: readonly Effect[], t: Tally): void {
  for (const e of effects) {
    switch (e.kind) {
      case 'schedule':
        queue.schedule(e.timer, e.dueAt);
        break;
      case 'cancel':
        queue.cancel(e.timer);
        break;
      case 'decide':
        t.decided++;
        break;
      case 'emit':
        t.emitted++;
        break;
      case 'forward':
        break;
      case 'error':
        t.errors++;
        break;
    }
  }
}

/** The profile a timer's firing needs: every timer here is keyed by a device (`scenario:dev-…`). */
function timerProfile(key: string): Profile | undefined {
  const parsed = parseTimerKey(key);
  return parsed && parsed.group.startsWith('dev-') ? profileOf(deviceIndex(parsed.group)) : undefined;
}

/** Fires every timer due up to `now`, in deadline order, as the runtime's one real timer would. */
function fireDue(engine: Engine, queue: TimerQueue, now: number, t: Tally): void {
  for (const due of queue.popDue(now)) {
    t.timersFired++;
    apply(queue, engine.onTimer(due.key, due.dueAt, timerProfile(due.key)), t);
  }
}

/**
 * Runs events in batches: generating a batch is not timed; then the engine's steps are timed, then applying
 * their effects (the timer queue) and firing what fell due. A timer due inside a batch fires after the
 * batch's events rather than before the next one; none does here, since every active device speaks well
 * within its silence (`timersFiredDuring` in the results says so). Stops when the events run out or
 * `untilMs` of timed work has passed.
 */
function drive(
  engine: Engine,
  queue: TimerQueue,
  source: Iterator<{ ev: Event; device: number }>,
  t: Tally,
  untilMs = Number.POSITIVE_INFINITY,
): void {
  const events: Event[] = [];
  const profiles: Profile[] = [];
  const outs: Effect[][] = [];
  for (;;) {
    events.length = 0;
    profiles.length = 0;
    for (let i = 0; i < CONFIG.batch; i++) {
      const next = source.next();
      if (next.done === true) break;
      events.push(next.value.ev);
      profiles.push(profileOf(next.value.device));
    }
    if (events.length === 0) return;
    const c0 = process.threadCpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < events.length; i++) outs[i] = engine.onEvent(events[i] as Event, profiles[i]);
    const t1 = performance.now();
    const c1 = process.threadCpuUsage();
    for (let i = 0; i < events.length; i++) {
      fireDue(engine, queue, (events[i] as Event).at - 1, t);
      apply(queue, outs[i] as Effect[], t);
    }
    const t2 = performance.now();
    const c2 = process.threadCpuUsage();
    outs.length = 0;
    t.events += events.length;
    t.engineMs += t1 - t0;
    t.queueMs += t2 - t1;
    t.engineCpuMs += cpuMs(c0, c1);
    t.queueCpuMs += cpuMs(c1, c2);
    if (t.engineMs + t.queueMs >= untilMs) return;
  }
}

interface Memory {
  heap: number;
  arrayBuffers: number;
  total: number;
}

/** Heap in use after a full collection, plus the typed arrays' backing stores (outside the JS heap). */
function memory(): Memory {
  collect();
  collect();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, arrayBuffers: m.arrayBuffers, total: m.heapUsed + m.arrayBuffers };
}

// ---------------------------------------------------------------------------------------------------------
// Formatting.

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, d: number): string =>
  n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const mb = (bytes: number): string => `${fixed(bytes / 1_048_576, 1)} MB`;
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// 1. Main run: shipped + 100 thresholds, active fleet, a million pending silence timers.

async function mainRun() {
  const rules = await loadRules(CONFIG.thresholds);
  const engine = new Engine(rules, { gateway: 'gw-bench' });
  const queue = new TimerQueue();
  const rand = mulberry32(42);
  const { activeDevices: active, silentDevices: silent, warmupRounds: warm } = CONFIG;
  const mem0 = memory();

  log(`main: warm-up, ${warm} rounds of ${int(active)} readings`);
  const warmup = emptyTally();
  drive(engine, queue, rounds(rand, active, 0, warm), warmup);
  const memActive = memory();

  log(`main: ${int(silent)} silent devices' heartbeats, interleaved with round ${warm}`);
  const loading = emptyTally();
  drive(
    engine,
    queue,
    rounds(rand, active, warm, warm + 1, { first: active, count: silent, round: warm }),
    loading,
  );
  const memAll = memory();
  const pendingTimers = queue.size;

  log(`main: measuring ${CONFIG.measuredRounds} rounds with ${int(pendingTimers)} timers pending`);
  const measured = emptyTally();
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  drive(engine, queue, rounds(rand, active, warm + 1, warm + 1 + CONFIG.measuredRounds), measured);
  const wallMs = performance.now() - wall0;
  const cpu = process.cpuUsage(cpu0);
  const memAfter = memory();
  const groups = engine.stats().reduce((n, s) => n + s.groups, 0);

  // The silent fleet's heartbeats came in round `warm`, so their deadlines end one period and one silence
  // later; every active device has spoken since and is due after that.
  const endOfSilence = (warm + 1) * CONFIG.periodMs + SILENCE_MS - 1;
  log(`main: firing the silent fleet's timers (virtual time to ${Math.round(endOfSilence / 1000)} s)`);
  const fired = emptyTally();
  const fc0 = process.threadCpuUsage();
  const f0 = performance.now();
  fireDue(engine, queue, endOfSilence, fired);
  const fireMs = performance.now() - f0;
  const fireCpuMs = cpuMs(fc0, process.threadCpuUsage());

  const n = measured.events;
  // Proof that the shipped scenarios take part: how often each fired over the whole run.
  const shippedMatches = Object.fromEntries(
    engine
      .stats()
      .filter((s) => !s.scenario.startsWith('bench-threshold-'))
      .map((s) => [s.scenario, s.matches]),
  );
  return {
    scenarios: rules.scenarios.length,
    thresholds: CONFIG.thresholds,
    telemetryListeners: listenersOf(rules, 'telemetry'),
    activeDevices: active,
    silentDevices: silent,
    periodMs: CONFIG.periodMs,
    warmupEvents: warmup.events,
    pendingTimers,
    events: {
      measured: n,
      ...rate(n, measured.engineMs + measured.queueMs, measured.engineCpuMs + measured.queueCpuMs),
      engineUsEach: (measured.engineCpuMs * 1000) / n,
      queueUsEach: (measured.queueCpuMs * 1000) / n,
      decidedPer1k: (measured.decided / n) * 1000,
      emitted: measured.emitted,
      errors: measured.errors,
      timersFiredDuring: measured.timersFired,
      /** Above 1: the collector's helper threads; below 1: the machine was busy with other work. */
      processCpuPerWall: (cpu.user + cpu.system) / 1000 / wallMs,
    },
    memory: {
      baseline: mem0,
      afterWarmup: memActive,
      afterSilentFleet: memAll,
      afterMeasure: memAfter,
      bytesPerActiveDevice: (memActive.total - mem0.total) / active,
      bytesPerSilentDevice: (memAll.total - memActive.total) / silent,
      bytesPerTrackedDevice: (memAfter.total - mem0.total) / (active + silent),
      stateGroups: groups,
    },
    shippedMatches,
    timerFires: {
      fired: fired.timersFired,
      ...rate(fired.timersFired, fireMs, fireCpuMs),
      decided: fired.decided,
      emitted: fired.emitted,
      remaining: queue.size,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// 2. The timer queue alone at a million.

function queueBench() {
  const n = CONFIG.queueTimers;
  const rand = mulberry32(7);
  // Two copies of each key: a lookup by a freshly built string hashes it, as the engine's keys are.
  const keysA = Array.from({ length: n }, (_, i) => `device-offline:${deviceId(i)}`);
  const keysB = Array.from({ length: n }, (_, i) => `device-offline:${deviceId(i)}`);
  const due = Float64Array.from({ length: n }, () => Math.floor(rand() * SILENCE_MS));
  const stride = strideFor(n);
  const mem0 = memory();
  const q = new TimerQueue();

  const time = (ops: number, body: () => void): Rate => {
    const c0 = process.threadCpuUsage();
    const t0 = performance.now();
    body();
    return rate(ops, performance.now() - t0, cpuMs(c0, process.threadCpuUsage()));
  };

  const insert = time(n, () => {
    for (let i = 0; i < n; i++) q.schedule(keysA[i] as string, due[i] as number);
  });
  const mem1 = memory();
  // The common case: an event restarts its device's silence, moving the timer to the latest deadline.
  const reschedule = time(n, () => {
    for (let k = 0; k < n; k++) {
      const i = (k * stride) % n;
      q.schedule(keysB[i] as string, SILENCE_MS + k);
    }
  });
  const m = Math.floor(n / 10);
  const cancel = time(m, () => {
    for (let k = 0; k < m; k++) q.cancel(keysB[(k * stride) % n] as string);
  });
  const reinsert = time(m, () => {
    for (let k = 0; k < m; k++) {
      const i = (k * stride) % n;
      q.schedule(keysA[i] as string, SILENCE_MS + n + k);
    }
  });
  const sizeBeforePop = q.size;
  const pop = time(m, () => {
    for (let k = 0; k < m; k++) q.pop();
  });
  return {
    timers: n,
    insert,
    reschedule,
    cancel,
    reinsert,
    pop,
    popCount: m,
    sizeBeforePop,
    bytesPerTimer: (mem1.total - mem0.total) / n,
  };
}

// ---------------------------------------------------------------------------------------------------------
// 3. Per-event cost as scenarios grow.

async function scalingRun(thresholds: number) {
  const rules = await loadRules(thresholds);
  const engine = new Engine(rules, { gateway: 'gw-bench' });
  const queue = new TimerQueue();
  const source = rounds(mulberry32(99), CONFIG.scalingDevices, 0, Number.MAX_SAFE_INTEGER);
  drive(engine, queue, source, emptyTally(), CONFIG.scalingWarmupMs);
  const t = emptyTally();
  drive(engine, queue, source, t, CONFIG.scalingMeasureMs);
  return {
    thresholds,
    scenarios: rules.scenarios.length,
    telemetryListeners: listenersOf(rules, 'telemetry'),
    events: t.events,
    ...rate(t.events, t.engineMs + t.queueMs, t.engineCpuMs + t.queueCpuMs),
    decidedPer1k: (t.decided / t.events) * 1000,
  };
}

// ---------------------------------------------------------------------------------------------------------

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  nproc: availableParallelism(),
  memoryGb: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  v8: process.versions.v8,
  platform: `${process.platform}-${process.arch}`,
  /** Other work on the machine shows in the wall-time figures, not in the CPU-time ones. */
  loadAverageAtStart: loadavg()[0] ?? 0,
};
log(
  `engine benchmark${QUICK ? ' (quick)' : ''}: ${machine.cpu}, ${machine.nproc} CPUs, node ${machine.node}`,
);

const main = await mainRun();
collect();
log(`timer queue: ${int(CONFIG.queueTimers)} timers`);
const queue = queueBench();
const scaling = [];
for (const n of CONFIG.scaling) {
  log(`scaling: ${n} threshold scenarios`);
  scaling.push(await scalingRun(n));
}

const results = {
  date: new Date().toISOString(),
  quick: QUICK,
  machine: { ...machine, loadAverageAtEnd: loadavg()[0] ?? 0 },
  config: CONFIG,
  main,
  queue,
  scaling,
};
await mkdir(dirname(args.out), { recursive: true });
await writeFile(args.out, `${JSON.stringify(results, null, 2)}\n`);

const e = main.events;
const mm = main.memory;
const fires = main.timerFires;
console.log(
  [
    `## Engine benchmark${QUICK ? ' (quick)' : ''}`,
    '',
    `${machine.cpu}, ${machine.nproc} CPUs, ${machine.memoryGb} GB, node ${machine.node}; load average ` +
      `${fixed(results.machine.loadAverageAtStart, 2)} at the start, ${fixed(results.machine.loadAverageAtEnd, 2)} ` +
      'at the end. Rates are per second of the main thread\'s CPU time (one core); "wall" is per second of ' +
      'elapsed time.',
    '',
    table(
      ['main run', 'value'],
      [
        [
          'scenarios',
          `${main.scenarios} (shipped + ${main.thresholds} threshold); ${main.telemetryListeners} look at each reading`,
        ],
        [
          'devices',
          `${int(main.activeDevices)} reading every ${main.periodMs / 1000} s + ${int(main.silentDevices)} silent ` +
            '(one heartbeat each)',
        ],
        ['pending silence timers', int(main.pendingTimers)],
        ['events measured', `${int(e.measured)}, after ${int(main.warmupEvents)} of warm-up`],
        ['**events/s, one core**', `**${int(e.perSecond)}** (wall ${int(e.perSecondWall)})`],
        [
          'per event',
          `${fixed(e.usEach, 2)} µs: engine ${fixed(e.engineUsEach, 2)}, timer queue ${fixed(e.queueUsEach, 2)}`,
        ],
        ['actions decided per 1,000 events', fixed(e.decidedPer1k, 1)],
        ['process CPU / wall while measuring', fixed(e.processCpuPerWall, 2)],
        [
          'silence timers fired/s',
          `${int(fires.perSecond)} (wall ${int(fires.perSecondWall)}); ${int(fires.fired)} fired, ` +
            `${int(fires.decided)} actions`,
        ],
      ],
    ),
    '',
    table(
      ['memory (JS heap after GC + typed arrays)', 'value'],
      [
        ['per active device: its state in every scenario + its timer', `${int(mm.bytesPerActiveDevice)} B`],
        ['per silent device: silence state + its timer', `${int(mm.bytesPerSilentDevice)} B`],
        [
          `per tracked device, all ${int(main.activeDevices + main.silentDevices)}`,
          `${int(mm.bytesPerTrackedDevice)} B`,
        ],
        ['engine state + timer queue in all', mb(mm.afterMeasure.total - mm.baseline.total)],
      ],
    ),
    '',
    table(
      [
        'scenarios',
        'on telemetry',
        'µs/event',
        'µs per scenario on telemetry',
        'events/s',
        'events/s (wall)',
        'actions / 1,000 events',
      ],
      scaling.map((s) => [
        `${s.scenarios} (shipped + ${s.thresholds})`,
        String(s.telemetryListeners),
        fixed(s.usEach, 2),
        fixed(s.usEach / s.telemetryListeners, 3),
        int(s.perSecond),
        int(s.perSecondWall),
        fixed(s.decidedPer1k, 1),
      ]),
    ),
    '',
    table(
      [`timer queue, ${int(queue.timers)} pending`, 'ops/s', 'ops/s (wall)'],
      (
        [
          ['schedule a new key', queue.insert],
          ['reschedule (move to the latest deadline)', queue.reschedule],
          ['cancel', queue.cancel],
          ['pop the earliest', queue.pop],
        ] as const
      ).map(([name, r]) => [name, int(r.perSecond), int(r.perSecondWall)]),
    ),
    '',
    `Timer queue memory: ${fixed(queue.bytesPerTimer, 1)} B per timer, key strings excluded.`,
    '',
    `JSON: ${args.out}`,
  ].join('\n'),
);
