// `npm run bench`: Vigil's event → action latency and throughput beside plain aedes and Debian's mosquitto,
// driven by the same load generator over loopback. Prints markdown, writes the results JSON and a latency chart.
// See docs/benchmarks.md for the method and reference results; `npm run bench -- --help` for the options.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseBenchOptions, USAGE, type BenchOptions } from './bench-options.js';
import { startCloudBroker, type CloudBroker } from './cloud-broker.js';
import { LoadGenClient } from './load-gen-client.js';
import { machineInfo } from './machine.js';
import { holds, measure, round1, sustained, SystemDiedError, type Measured, type Window } from './measure.js';
import type { LoadResult } from './load-protocol.js';
import { newestProfiles, summarizeCpuProfile } from './cpu-profile.js';
import { rssMB } from './proc-stats.js';
import { evaluateTargets, markdownReport } from './report.js';
import type { BenchResults, IdleMemoryRecord, ProbeRecord, RunRecord } from './results.js';
import { DEFAULT_BINARY, startupBench } from './startup.js';
import { latencyChart } from './svg-chart.js';
import {
  hasMosquitto,
  startAedes,
  startMosquitto,
  startVigil,
  type SystemName,
  type SystemUnderTest,
} from './systems.js';
import { benchSecret, CLI, prepareVigil, type FleetShape, type VigilSetup } from './vigil-setup.js';
import { writeBudget, type WriteBudgetRecord } from './write-budget.js';

/** The fleet's profiles spread over sites and customers as 100,000 simulated devices would be. */
const FLEET: Pick<FleetShape, 'sites' | 'customers'> = { sites: 5_000, customers: 25_000 };

type Variant = 'bench-rules' | 'shipped-rules';

interface Driven {
  sut: SystemUnderTest;
  gen: LoadGenClient;
}

class Bench {
  private vigil: VigilSetup | undefined;
  private cloud: CloudBroker | undefined;
  private readonly live = new Set<Driven>();
  /** Every device's password; Vigil keeps its hash, the plain brokers take any. */
  private readonly secret = benchSecret();

  constructor(private readonly o: BenchOptions) {}

  log(message: string): void {
    process.stderr.write(`[bench] ${message}\n`);
  }

  async setUp(): Promise<void> {
    if (!this.o.systems.some(isVigil) || this.vigil !== undefined) return;
    if (this.o.binary === undefined && !existsSync(CLI)) {
      throw new Error(`${CLI} is missing: run \`npm run build\` first (npm run bench does)`);
    }
    this.log(`importing ${this.o.profiles.toLocaleString('en-US')} profiles, writing the rules…`);
    this.vigil = await prepareVigil(
      {
        ...FLEET,
        profiles: this.o.profiles,
        seed: this.o.seed,
        credentialed: Math.max(this.o.devices, this.o.idleConnections),
        secret: this.secret,
      },
      this.o.thresholds,
      this.o.binary,
    );
    this.log(`profiles imported in ${(this.vigil.importMs / 1_000).toFixed(1)} s`);
    this.cloud = await startCloudBroker();
  }

  get importMs(): number | undefined {
    return this.vigil?.importMs;
  }

  /** The write-budget section, on the shipped rules. */
  async writeBudget(): Promise<WriteBudgetRecord> {
    if (!this.vigil || !this.cloud) throw new Error('set up first');
    const { budget } = this.o;
    return writeBudget({
      setup: this.vigil,
      cloud: this.cloud,
      fleet: FLEET,
      secret: this.secret,
      seed: this.o.seed,
      devices: this.o.devices,
      points: [
        { qos: 0, rate: 1_000 },
        { qos: 0, rate: 20_000 },
        { qos: 1, rate: 1_000 },
        { qos: 1, rate: 20_000 },
      ],
      warmupMs: this.o.warmupMs,
      measureMs: budget.measureMs,
      idleDevices: 1_000,
      idleSettleMs: budget.idleSettleMs,
      idleMeasureMs: budget.idleMeasureMs,
      log: (m) => this.log(m),
    });
  }

  /** Starts a system and a load generator with the fleet connected to it. */
  async launch(name: SystemName, variant: Variant = 'bench-rules', cpuProfDir?: string): Promise<Driven> {
    const sut = await this.startSystem(name, variant, cpuProfDir);
    const gen = LoadGenClient.start();
    const driven = { sut, gen };
    this.live.add(driven);
    try {
      const connected = await gen.request(
        {
          kind: 'connect',
          url: sut.url,
          devices: this.o.devices,
          seed: this.o.seed,
          ...FLEET,
          mode: sut.mode,
          secret: this.secret,
          ...(sut.cloudUrl !== undefined ? { cloudUrl: sut.cloudUrl } : {}),
        },
        'connected',
      );
      this.log(`${name}: ${connected.connected} devices connected in ${(connected.ms / 1_000).toFixed(1)} s`);
    } catch (err) {
      await this.shutDown(driven);
      throw err;
    }
    return driven;
  }

  async shutDown(d: Driven): Promise<void> {
    this.live.delete(d);
    await d.gen.stop();
    await d.sut.stop();
  }

  async tearDown(): Promise<void> {
    for (const d of [...this.live]) await this.shutDown(d);
    await this.cloud?.stop();
    await this.vigil?.remove();
  }

  private startSystem(name: SystemName, variant: Variant, cpuProfDir?: string): Promise<SystemUnderTest> {
    switch (name) {
      case 'aedes':
        return startAedes({ batchWrites: !this.o.aedesPlain });
      case 'mosquitto':
        return startMosquitto();
      case 'vigil':
      case 'vigil-2t': {
        if (!this.vigil || !this.cloud) throw new Error('set up first');
        return startVigil(this.vigil, {
          threads: name === 'vigil-2t' ? 2 : 1,
          cloudUrl: this.cloud.url,
          binary: this.o.binary,
          rulesDir: variant === 'bench-rules' ? this.vigil.rulesDir : this.vigil.shippedRulesDir,
          cpuProfDir,
        });
      }
    }
  }

  /** Every rate at every QoS, the systems taking turns at each step so that a busier moment of the machine hits all. */
  async fixedRates(systems: readonly SystemName[]): Promise<RunRecord[]> {
    const runs: RunRecord[] = [];
    const driven: Driven[] = [];
    try {
      for (const name of systems) driven.push(await this.launch(name));
      for (const { qos, rate } of this.o.points) {
        for (let i = 0; i < driven.length; i++) {
          const record = await this.fixedRate(driven, i, rate, qos);
          runs.push(record);
          this.log(
            `${record.system} QoS ${qos} ${rate}/s: achieved ${record.achievedRate}/s, p50 ${record.latencyMs?.p50 ?? '–'} ms, ` +
              `p99 ${record.latencyMs?.p99 ?? '–'} ms, CPU ${record.cpuPct}%, generator ${record.loadGenCpuPct}%, ` +
              `dropped ${record.dropped}, stall ${record.cpuStallPct ?? '–'}%`,
          );
        }
      }
    } finally {
      for (const d of driven) await this.shutDown(d);
    }
    return runs;
  }

  /**
   * One point for `driven[i]`. A run that other work on the machine disturbed (CPU stall over the limit) is
   * repeated, and the calmest attempt kept; a system that exits is recorded so and started afresh in place.
   */
  private async fixedRate(driven: Driven[], i: number, rate: number, qos: 0 | 1): Promise<RunRecord> {
    const w: Window = { warmupMs: this.o.warmupMs, measureMs: this.o.measureMs, drainMs: this.o.drainMs };
    let kept: RunRecord | undefined;
    let attempts = 0;
    for (let attempt = 1; attempt <= 1 + this.o.retries; attempt++) {
      attempts = attempt;
      const d = driven[i] as Driven;
      let record: RunRecord;
      try {
        ({ record } = await measure(d.gen, d.sut, rate, qos, w));
      } catch (err) {
        if (!(err instanceof SystemDiedError)) throw err;
        this.log(err.message);
        await this.shutDown(d);
        driven[i] = await this.launch(d.sut.name);
        return diedRecord(d.sut.name, rate, qos);
      }
      if (kept === undefined || (record.cpuStallPct ?? 0) < (kept.cpuStallPct ?? 0)) kept = record;
      if ((record.cpuStallPct ?? 0) <= this.o.maxStallPct || attempt > this.o.retries) break;
      this.log(
        `${d.sut.name} QoS ${qos} ${rate}/s: tasks waited for a core ${record.cpuStallPct}% of the time; once more`,
      );
    }
    const result = kept as RunRecord;
    result.attempts = attempts;
    return result;
  }

  /**
   * The highest QoS 0 rate a system sustains: up from `start` by `factor` until a rate does not hold, then
   * bisected (geometrically) between the last that held and the first that did not. After a rate that did
   * not hold, the system starts afresh, so that its backlog does not weigh on the next probe.
   */
  async maxThroughput(
    name: SystemName,
    variant: Variant,
    start: number,
    probes: ProbeRecord[],
  ): Promise<number | null> {
    const label = variant === 'shipped-rules' ? `${name} (shipped scenarios)` : name;
    const w: Window = {
      warmupMs: this.o.probeWarmupMs,
      measureMs: this.o.probeMeasureMs,
      drainMs: this.o.quick ? 2_000 : 4_000,
    };
    const factor = this.o.quick ? 2 : 1.5;
    let lo: number | null = null;
    let hi: number | null = null;
    let rate = start;
    let bisections = 0;
    let d: Driven | undefined;
    try {
      for (let step = 0; step < 16; step++) {
        let m: Measured;
        let verdict: { ok: boolean; reason?: string };
        for (let attempt = 1; ; attempt++) {
          d ??= await this.launch(name, variant);
          try {
            m = await measure(d.gen, d.sut, rate, 0, w);
          } catch (err) {
            if (!(err instanceof SystemDiedError)) throw err;
            this.log(err.message);
            m = { record: diedRecord(name, rate, 0), load: { held: 0 } as LoadResult };
          }
          verdict = d.sut.alive() ? sustained(m, this.o.maxP99Ms) : { ok: false, reason: 'it exited' };
          const stall = m.record.cpuStallPct ?? 0;
          if (verdict.ok || stall <= this.o.maxStallPct || attempt > this.o.retries) break;
          // A rate that did not hold while the machine was busy is tried again, on a fresh start.
          this.log(
            `${label} ${Math.round(rate)}/s did not hold with tasks waiting for a core ${stall}% of the time; once more`,
          );
          await this.shutDown(d);
          d = undefined;
        }
        probes.push({
          system: label,
          rate,
          achievedRate: m.record.achievedRate,
          p99Ms: m.record.latencyMs?.p99 ?? null,
          dropped: m.record.dropped,
          cpuPct: m.record.cpuPct,
          loadGenCpuPct: m.record.loadGenCpuPct,
          ...(m.record.cpuStallPct !== undefined ? { cpuStallPct: m.record.cpuStallPct } : {}),
          sustained: verdict.ok,
          ...(verdict.reason !== undefined ? { reason: verdict.reason } : {}),
        });
        this.log(
          `${label} max search ${Math.round(rate)}/s: ${verdict.ok ? 'held' : `did not hold (${verdict.reason ?? ''})`}, ` +
            `CPU ${m.record.cpuPct}%, generator ${m.record.loadGenCpuPct}%`,
        );
        if (verdict.ok) lo = rate;
        else {
          hi = rate;
          if (d) await this.shutDown(d);
          d = undefined;
        }
        if (hi !== null && lo !== null && bisections >= this.o.probeBisections) break;
        if (hi === null) rate = rate * factor;
        else if (lo === null) rate = rate / factor;
        else {
          rate = Math.sqrt(lo * hi);
          bisections++;
        }
        rate = Math.round(rate / 500) * 500;
        if (lo !== null && hi !== null && hi - lo <= 1_000) break;
        if (lo === null && rate < 500) break;
      }
    } finally {
      if (d) await this.shutDown(d);
    }
    return lo;
  }

  /** RSS of a freshly started system, then with `n` idle device connections (connected, subscribed, silent). */
  async idleMemory(name: SystemName, n: number): Promise<IdleMemoryRecord> {
    const sut = await this.startSystem(name, 'bench-rules');
    const gen = LoadGenClient.start();
    const driven = { sut, gen };
    this.live.add(driven);
    try {
      await sleep(2_000);
      const baseMB = rssMB(sut.pid);
      const opened = await gen.request(
        { kind: 'idle', url: sut.url, connections: n, idPrefix: 'dev-', secret: this.secret },
        'idle',
      );
      // Let the connections' first work (Vigil: a `connected` event and a profile read each) settle.
      await sleep(this.o.quick ? 2_000 : 5_000);
      const after = rssMB(sut.pid);
      this.log(
        `${name}: ${opened.connected} idle connections: RSS ${baseMB.toFixed(0)} → ${after.toFixed(0)} MB`,
      );
      return {
        system: name,
        connections: n,
        connected: opened.connected,
        baseMB: round1(baseMB),
        rssMB: round1(after),
        kbPerConnection: round1(((after - baseMB) * 1024) / Math.max(1, opened.connected)),
      };
    } finally {
      await this.shutDown(driven);
    }
  }

  /** The gateway under `node --cpu-prof` at one rate; prints where its time went. */
  async profile(dir: string, rate: number, measureMs: number, system: SystemName): Promise<void> {
    await mkdir(dir, { recursive: true });
    const d = await this.launch(system, 'bench-rules', dir);
    try {
      const { record } = await measure(d.gen, d.sut, rate, 0, {
        warmupMs: 2_000,
        measureMs,
        drainMs: this.o.drainMs,
      });
      this.log(
        `profiled at ${rate}/s: p99 ${record.latencyMs?.p99 ?? '–'} ms, CPU ${record.cpuPct}%, dropped ${record.dropped}`,
      );
    } finally {
      await this.shutDown(d);
    }
    // One profile per thread (node --cpu-prof writes the edge thread's too, with --threads 2).
    for (const file of await newestProfiles(dir)) process.stdout.write(await summarizeCpuProfile(file));
  }
}

function isVigil(name: SystemName): boolean {
  return name === 'vigil' || name === 'vigil-2t';
}

/** A run during which the system under test exited. */
function diedRecord(system: SystemName, rate: number, qos: 0 | 1): RunRecord {
  return {
    system,
    qos,
    rate,
    achievedRate: 0,
    latencyMs: null,
    cpuPct: 0,
    rssMB: 0,
    dropped: 0,
    loadGenCpuPct: 0,
    replies: { expected: 0, received: 0 },
    error: 'the system exited during the run',
  };
}

/** The sections under load: fixed rates, the throughput search, idle connections (or a CPU profile alone). */
async function underLoad(
  bench: Bench,
  o: BenchOptions,
  systems: SystemName[],
  results: BenchResults,
): Promise<void> {
  await bench.setUp();
  if (o.cpuProf) {
    await bench.profile(o.cpuProf.dir, o.cpuProf.rate, o.cpuProf.measureMs, systems.find(isVigil) ?? 'vigil');
    return;
  }
  if (bench.importMs !== undefined) results.machine.profileImportMs = Math.round(bench.importMs);
  results.runs = await bench.fixedRates(systems);

  if (o.maxThroughput) {
    const startOf = (name: SystemName): number => {
      const held = results.runs
        .filter((r) => r.system === name && r.qos === 0)
        .filter((r) => holds(r, o.maxP99Ms).ok)
        .map((r) => r.rate);
      return held.length > 0
        ? Math.max(...held) * (o.quick ? 2 : 1.5)
        : Math.min(...o.points.map((p) => p.rate));
    };
    for (const name of systems) {
      results.maxThroughput[name] = await bench.maxThroughput(
        name,
        'bench-rules',
        startOf(name),
        results.probes,
      );
    }
    if (systems.includes('vigil') && !o.quick) {
      results.maxThroughput.vigilShippedRules = await bench.maxThroughput(
        'vigil',
        'shipped-rules',
        results.maxThroughput.vigil ?? startOf('vigil'),
        results.probes,
      );
    }
  }
  if (o.idleConnections > 0) {
    for (const name of systems) results.idleMemory.push(await bench.idleMemory(name, o.idleConnections));
  }
}

async function main(): Promise<void> {
  let o: BenchOptions | 'help';
  try {
    o = parseBenchOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  if (o === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const systems = o.systems.filter((s) => s !== 'mosquitto' || hasMosquitto());
  if (systems.length < o.systems.length)
    process.stderr.write('[bench] mosquitto is not installed: skipped\n');

  const started = performance.now();
  const bench = new Bench(o);
  const results: BenchResults = {
    machine: machineInfo(o),
    runs: [],
    maxThroughput: { vigil: null, aedes: null, mosquitto: null },
    probes: [],
    idleMemory: [],
    targets: [],
  };
  const stop = (): void => {
    void bench.tearDown().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    // First, while the machine is quiet: nothing of the benchmark runs yet.
    if (o.startup.runs > 0 && !o.cpuProf && !o.budget.only) {
      results.startup = await startupBench({
        runs: o.startup.runs,
        binary: o.binary ?? DEFAULT_BINARY,
        xz: o.startup.xz,
        crash: o.startup.crash,
        log: (m) => bench.log(m),
      });
    }
    if (!o.startup.only && !o.budget.only) await underLoad(bench, o, systems, results);
    if (o.budget.only || (o.budget.run && !o.startup.only && !o.cpuProf && systems.includes('vigil'))) {
      await bench.setUp();
      results.writeBudget = await bench.writeBudget();
    }
  } finally {
    await bench.tearDown();
  }
  // A profile run prints where the time went, and nothing else.
  if (o.cpuProf) return;

  results.machine.loadAverageAtEnd = loadavg().map((n) => Math.round(n * 100) / 100);
  results.targets = evaluateTargets(results);
  await mkdir(dirname(o.out), { recursive: true });
  await writeFile(o.out, JSON.stringify(results, null, 2) + '\n');
  if (results.runs.length > 0) {
    await mkdir(dirname(o.svg), { recursive: true });
    await writeFile(
      o.svg,
      latencyChart(
        results.runs,
        `Event → command (Vigil) and relay (aedes, mosquitto) latency — ${results.machine.date.slice(0, 10)}`,
        [
          { qos: 0, rate: 5_000, ms: 1 },
          { qos: 0, rate: 20_000, ms: 2 },
          { qos: 1, rate: 5_000, ms: 5 },
        ],
      ),
    );
  }
  process.stdout.write(markdownReport(results));
  const wrote = results.runs.length > 0 ? `${o.out} and ${o.svg}` : o.out;
  process.stderr.write(
    `[bench] done in ${((performance.now() - started) / 1_000).toFixed(0)} s; wrote ${wrote}\n`,
  );
}

await main();
