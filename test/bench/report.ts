import { writeBudgetTable } from './write-budget.js';
import type { BenchResults, RunRecord, TargetRecord } from './results.js';
import { startupTable, startupTargets } from './startup.js';

function fmt(n: number | null | undefined, digits = 2): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits);
}

function kilo(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  return n >= 1_000 ? `${(n / 1_000).toFixed(n >= 100_000 ? 0 : 1)}k` : String(Math.round(n));
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

function find(runs: readonly RunRecord[], system: string, qos: number, rate: number): RunRecord | undefined {
  return runs.find((r) => r.system === system && r.qos === qos && r.rate === rate);
}

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || b === 0) return '–';
  return `${(a / b).toFixed(2)}×`;
}

/** The fixed-rate runs: one row per system, QoS and rate, Vigil's p99 also as a ratio to the baselines'. */
export function runsTable(runs: readonly RunRecord[]): string {
  const rows = runs.map((r) => {
    const aedes = find(runs, 'aedes', r.qos, r.rate);
    const mosquitto = find(runs, 'mosquitto', r.qos, r.rate);
    const l = r.latencyMs;
    const vigil = r.system.startsWith('vigil');
    return [
      r.system,
      String(r.qos),
      kilo(r.rate),
      kilo(r.achievedRate),
      fmt(l?.p50),
      fmt(l?.p99),
      fmt(l?.p999),
      fmt(l?.max),
      vigil ? fmt(r.upstreamLatencyMs?.p99) : '',
      vigil ? ratio(l?.p99, aedes?.latencyMs?.p99) : '',
      vigil ? ratio(l?.p99, mosquitto?.latencyMs?.p99) : '',
      fmt(r.cpuPct, 0),
      fmt(r.cpuUsPerEvent, 1),
      vigil ? ratio(r.cpuUsPerEvent, aedes?.cpuUsPerEvent) : '',
      threadsOf(r),
      fmt(r.rssMB, 0),
      fmt(r.loadGenCpuPct, 0),
      r.error ?? String(r.dropped),
      r.cpuStallPct === undefined
        ? '–'
        : `${Math.round(r.cpuStallPct)}%${(r.attempts ?? 1) > 1 ? ` (${r.attempts} tries)` : ''}`,
    ];
  });
  return table(
    [
      'system',
      'QoS',
      'rate',
      'achieved',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'max ms',
      'upstream p99 ms',
      'p99 / aedes',
      'p99 / mosquitto',
      'CPU %',
      'CPU µs / event',
      'CPU / event / aedes',
      'CPU % by thread',
      'peak RSS MB',
      'generator CPU %',
      'dropped',
      'CPU stall',
    ],
    rows,
  );
}

/** The busiest threads of a run, `name pct`, most first. */
function threadsOf(r: RunRecord): string {
  const threads = Object.entries(r.threadCpuPct ?? {}).sort((a, b) => b[1] - a[1]);
  return threads
    .slice(0, 4)
    .map(([name, pct]) => `${name} ${Math.round(pct)}`)
    .join(', ');
}

export function maxThroughputTable(results: BenchResults): string {
  const m = results.maxThroughput;
  const rows: string[][] = [];
  const add = (label: string, value: number | null | undefined): void => {
    if (value === undefined) return;
    rows.push([
      label,
      value === null ? '–' : `${kilo(value)} events/s`,
      ratio(value ?? undefined, m.aedes ?? undefined),
      ratio(value ?? undefined, m.mosquitto ?? undefined),
    ]);
  };
  add('vigil (shipped + threshold scenarios)', m.vigil);
  add('vigil --threads 2 (shipped + threshold scenarios)', m['vigil-2t']);
  add('vigil (shipped scenarios)', m.vigilShippedRules);
  add('aedes', m.aedes);
  add('mosquitto', m.mosquitto);
  return table(['system', 'max sustainable (QoS 0)', '/ aedes', '/ mosquitto'], rows);
}

export function probesTable(results: BenchResults): string {
  return table(
    ['system', 'rate', 'achieved', 'p99 ms', 'dropped', 'CPU %', 'generator CPU %', 'CPU stall', 'held'],
    results.probes.map((p) => [
      p.system,
      kilo(p.rate),
      kilo(p.achievedRate),
      fmt(p.p99Ms),
      String(p.dropped),
      fmt(p.cpuPct, 0),
      fmt(p.loadGenCpuPct, 0),
      p.cpuStallPct === undefined ? '–' : `${Math.round(p.cpuStallPct)}%`,
      p.sustained ? 'yes' : `no: ${p.reason ?? ''}`,
    ]),
  );
}

export function idleMemoryTable(results: BenchResults): string {
  const aedes = results.idleMemory.find((m) => m.system === 'aedes');
  return table(
    ['system', 'connections', 'RSS before MB', 'RSS with them MB', 'KB per connection', '/ aedes'],
    results.idleMemory.map((m) => [
      m.system,
      `${m.connected}/${m.connections}`,
      fmt(m.baseMB, 0),
      fmt(m.rssMB, 0),
      fmt(m.kbPerConnection, 1),
      ratio(m.rssMB, aedes?.rssMB),
    ]),
  );
}

/** The issue's targets, checked against what was measured (null: not measured in this run). */
export function evaluateTargets(results: BenchResults): TargetRecord[] {
  const out: TargetRecord[] = [];
  const p99 = (qos: number, rate: number): number | undefined =>
    find(results.runs, 'vigil', qos, rate)?.latencyMs?.p99;
  const latencyTarget = (qos: 0 | 1, rate: number, limitMs: number): void => {
    const v = p99(qos, rate);
    out.push({
      target: `p99 event→command ≤ ${limitMs} ms at ${kilo(rate)} events/s, QoS ${qos}`,
      value: v === undefined ? 'not measured' : `${fmt(v)} ms`,
      met: v === undefined ? null : v <= limitMs,
    });
  };
  latencyTarget(0, 5_000, 1);
  latencyTarget(0, 20_000, 2);
  const { aedes, vigil, vigilShippedRules } = results.maxThroughput;
  const throughputTarget = (label: string, value: number | null | undefined, share: number): void => {
    const known = value !== null && value !== undefined && aedes !== null;
    out.push({
      target: `max throughput, ${label} ≥ ${Math.round(share * 100)}% of aedes`,
      value: known
        ? `${kilo(value)}/s = ${Math.round((value / aedes) * 100)}% of ${kilo(aedes)}/s`
        : 'not measured',
      met: known ? value >= share * aedes : null,
    });
  };
  throughputTarget('shipped scenarios', vigilShippedRules, 0.5);
  throughputTarget('with the threshold scenarios', vigil, 0.33);
  latencyTarget(1, 5_000, 5);
  const vm = results.idleMemory.find((m) => m.system === 'vigil');
  const am = results.idleMemory.find((m) => m.system === 'aedes');
  out.push({
    target: 'RSS with idle device connections ≤ 1.2 × aedes',
    value:
      vm && am
        ? `${fmt(vm.rssMB, 0)} MB vs ${fmt(am.rssMB, 0)} MB = ${(vm.rssMB / am.rssMB).toFixed(2)}× (${fmt(vm.kbPerConnection, 1)} vs ${fmt(am.kbPerConnection, 1)} KB/connection, ${vm.connections} connections)`
        : 'not measured',
    met: vm && am ? vm.rssMB <= 1.2 * am.rssMB : null,
  });
  if (results.startup) out.push(...startupTargets(results.startup));
  return out;
}

export function targetsTable(targets: readonly TargetRecord[]): string {
  return table(
    ['target', 'measured', 'met'],
    targets.map((t) => [t.target, t.value, t.met === null ? '–' : t.met ? 'yes' : 'no']),
  );
}

export function markdownReport(results: BenchResults): string {
  const m = results.machine;
  return [
    `## Vigil benchmark — ${m.date}`,
    '',
    `${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB, Linux ${m.kernel}, Node ${m.node}, ${m.mosquitto ?? 'no mosquitto'}; ` +
      `commit ${m.commit}; load average ${m.loadAverageAtStart.map((n) => n.toFixed(2)).join(' ')} at the start` +
      (m.loadAverageAtEnd ? `, ${m.loadAverageAtEnd.map((n) => n.toFixed(2)).join(' ')} at the end` : '') +
      `. ${m.fleet.devices} device connections, ${m.fleet.profiles.toLocaleString('en-US')} profiles, ` +
      `${m.fleet.payload}; gateway: ${m.gateway}${m.quick ? ' (quick run)' : ''}.`,
    '',
    ...(results.startup ? ['### Startup', '', startupTable(results.startup), ''] : []),
    ...(results.runs.length === 0
      ? []
      : [
          '### Fixed rates',
          '',
          runsTable(results.runs),
          '',
          '### Maximum sustainable throughput',
          '',
          maxThroughputTable(results),
          '',
          probesTable(results),
          '',
        ]),
    ...(results.idleMemory.length === 0
      ? []
      : ['### Memory with idle device connections', '', idleMemoryTable(results), '']),
    ...(results.writeBudget ? ['### Write budget', '', writeBudgetTable(results.writeBudget), ''] : []),
    '### Targets',
    '',
    targetsTable(results.targets),
    '',
  ].join('\n');
}
