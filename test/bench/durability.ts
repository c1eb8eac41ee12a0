/**
 * What durability costs: the same load at QoS 0 and at QoS 1 (each QoS 1 publish acknowledged only once its
 * record is fdatasync'd, in group commits), at fixed rates, against the built gateway in its own process.
 *
 * Latency is device to device: the simulator stamps `ts` in each reading, a scenario sends it back as a
 * command, and the simulator notes when the command arrives; at QoS 1 that path includes the synced commit.
 * Bytes written are the gateway process's `write_bytes` from /proc (what reached the block layer: journal,
 * checkpoints and LevelDB) and the growth of the journal, per event.
 *
 * Recovery: a journal of `--recovery` readings from 10,000 devices (written directly, no checkpoint) is
 * replayed by a gateway starting on it, with a stateful rule set; the start-up log says how long that took,
 * and the checkpoint taken right after says how big the state is.
 *
 *   npm run build && node --import tsx test/bench/durability.ts [--rates 1000,4000] [--seconds 10] [--data DIR]
 *     [--recovery 200000] [--windows 2,5]
 *
 * `--data` puts the data directories on the filesystem to measure (default: the OS temporary directory).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { runSim } from '../../firmware-sim/index.js';
import { encodeRecord, Journal } from '../../src/runtime/index.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const DEVICES = 200;
const WARMUP_MS = 1_000;

const RULES = `id: echo
description: Every reading goes back to its device as a command carrying the reading's send time.
priority: 50
category: maintenance
when:
  event: telemetry
then:
  action: echo
  to: [device]
  payload:
    ts: data.ts
`;

interface Run {
  qos: 0 | 1;
  rate: number;
  windowMs: number;
  achieved: number;
  events: number;
  acked: number;
  commands: number;
  p50: number;
  p99: number;
  max: number;
  bytesPerEvent: number;
  journalBytesPerEvent: number;
  recordsPerCommit: number;
  syncedCommits: number;
}

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '1000,4000' },
    seconds: { type: 'string', default: '10' },
    data: { type: 'string' },
    recovery: { type: 'string', default: '200000' },
    /** Also run QoS 1 with these commit windows (ms), e.g. `2,5`: fewer fdatasyncs for some latency. */
    windows: { type: 'string', default: '' },
  },
});
const rates = values.rates.split(',').map(Number);
const seconds = Number(values.seconds);
const base = values.data ?? tmpdir();

async function main(): Promise<void> {
  const work = await mkdtemp(join(base, 'vigil-bench-durability-'));
  const rules = join(work, 'rules');
  await mkdir(rules, { recursive: true });
  await writeFile(join(rules, 'echo.yaml'), RULES);
  console.log(`filesystem: ${await filesystemOf(work)} · ${DEVICES} devices · ${seconds} s per run`);
  const runs: Run[] = [];
  try {
    for (const rate of rates) {
      for (const qos of [0, 1] as const) {
        const run = await measure(work, rules, rate, qos, 0);
        runs.push(run);
        console.log(line(run));
      }
      for (const windowMs of values.windows.split(',').filter(Boolean).map(Number)) {
        const run = await measure(work, rules, rate, 1, windowMs);
        runs.push(run);
        console.log(line(run));
      }
    }
    if (Number(values.recovery) > 0) await measureRecovery(work, Number(values.recovery));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  console.log(
    '\n| rate /s | QoS | commit window ms | achieved /s | p50 ms | p99 ms | max ms | bytes written /event | journal bytes /event | records /commit |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of runs) {
    console.log(
      `| ${r.rate} | ${r.qos} | ${r.windowMs} | ${Math.round(r.achieved)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(1)} | ${Math.round(r.bytesPerEvent)} | ${Math.round(r.journalBytesPerEvent)} | ${r.recordsPerCommit.toFixed(1)} |`,
    );
  }
  for (const rate of rates) {
    const q0 = runs.find((r) => r.rate === rate && r.qos === 0);
    const q1 = runs.find((r) => r.rate === rate && r.qos === 1 && r.windowMs === 0);
    if (q0 && q1) {
      console.log(
        `${rate}/s: QoS 1 / QoS 0 latency ratio p50 ${(q1.p50 / q0.p50).toFixed(2)}, p99 ${(q1.p99 / q0.p99).toFixed(2)}`,
      );
    }
  }
}

async function measure(
  work: string,
  rules: string,
  rate: number,
  qos: 0 | 1,
  windowMs: number,
): Promise<Run> {
  const data = join(work, `data-${rate}-${qos}-${windowMs}`);
  const config = join(work, `config-${windowMs}.yaml`);
  await writeFile(config, `durability:\n  commitWindow: ${windowMs}ms\n`);
  const gateway = await startGateway(['--config', config, '--data', data, '--rules', rules]);
  try {
    const samples: Array<[sentAtMs: number, latencyMs: number]> = [];
    const summary = await runSim(
      {
        url: `mqtt://127.0.0.1:${gateway.mqttPort}`,
        devices: DEVICES,
        rate,
        durationMs: seconds * 1_000,
        qos,
        hotShare: 0,
        lowBatteryShare: 0,
        lingerMs: 1_000,
      },
      {
        onCommand: (_device, _name, payload, receivedAtMs) => {
          const action = JSON.parse(payload.toString()) as { payload: { ts: number } };
          samples.push([action.payload.ts, receivedAtMs - action.payload.ts]);
        },
      },
    );
    // The first second warms up (JIT, connections settling) and is left out of the latencies.
    const firstSentMs = samples.reduce((min, [sent]) => Math.min(min, sent), Number.POSITIVE_INFINITY);
    const latencies = samples.filter(([sent]) => sent >= firstSentMs + WARMUP_MS).map(([, ms]) => ms);
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.httpPort}/metrics`)).text();
    // Give the periodic sync of unsynced records its turn, so QoS 0 pays what it eventually writes too.
    await new Promise((r) => setTimeout(r, 1_500));
    const written = await writeBytes(gateway.child.pid ?? 0);
    const journal = await dirBytes(join(data, 'journal'));
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
    const events = summary.published.telemetry;
    const records = metricValue(
      metrics,
      'vigil_journal_records_total',
      qos === 1 ? 'persist="sync"' : 'persist="write"',
    );
    const commits =
      metricValue(metrics, 'vigil_journal_commits_total', 'synced="true"') +
      metricValue(metrics, 'vigil_journal_commits_total', 'synced="false"');
    return {
      qos,
      rate,
      windowMs,
      achieved: summary.achievedRate,
      events,
      acked: summary.acked,
      commands: summary.commands,
      p50: pct(0.5),
      p99: pct(0.99),
      max: latencies[latencies.length - 1] ?? NaN,
      bytesPerEvent: (written - gateway.startupWriteBytes) / events,
      journalBytesPerEvent: journal / events,
      recordsPerCommit: commits > 0 ? records / commits : 0,
      syncedCommits: metricValue(metrics, 'vigil_journal_commits_total', 'synced="true"'),
    };
  } finally {
    await gateway.stop();
  }
}

const STATEFUL_RULES = {
  'offline.yaml': `id: offline
priority: 90
category: support
when:
  absent: any
  for: 1h
then:
  action: offline
  to: [upstream]
`,
  'third.yaml': `id: third
priority: 60
category: maintenance
when:
  event: telemetry
  count: 3
then:
  action: third
  to: [upstream]
`,
};

async function measureRecovery(work: string, records: number): Promise<void> {
  const devices = 10_000;
  const rules = join(work, 'stateful-rules');
  await mkdir(rules, { recursive: true });
  for (const [name, text] of Object.entries(STATEFUL_RULES)) await writeFile(join(rules, name), text);
  const data = join(work, 'data-recovery');
  const journal = await Journal.open({ dir: join(data, 'journal'), logger: pino({ level: 'silent' }) });
  const startMs = Date.now() - records;
  for (let i = 0; i < records; i++) {
    const event = {
      actor: `dev-${i % devices}`,
      type: 'telemetry',
      at: startMs + i,
      data: { temp: 20 + (i % 10), hum: 40, bat: 3.9, ts: startMs + i },
      source: 'device' as const,
    };
    journal.append(encodeRecord({ kind: 'event', event }), 'write');
  }
  await journal.recorded();
  await journal.close();
  const journalBytes = await dirBytes(join(data, 'journal'));
  const gateway = await startGateway(['--data', data, '--rules', rules, '--log-level', 'info']);
  try {
    const deadline = Date.now() + 120_000;
    let recovered: RegExpExecArray | null = null;
    while (!(recovered = /"replayed":(\d+),"ms":(\d+)[^\n]*"state recovered"/.exec(gateway.output()))) {
      if (Date.now() > deadline) throw new Error(`no recovery in the log:\n${gateway.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    let checkpoint = 0;
    let checkpointSeconds = 0;
    while (checkpoint === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      const metrics = await (await fetch(`http://127.0.0.1:${gateway.httpPort}/metrics`)).text();
      checkpoint = Number(/^vigil_checkpoint_bytes (\S+)$/m.exec(metrics)?.[1] ?? 0);
      checkpointSeconds = Number(/^vigil_checkpoint_seconds (\S+)$/m.exec(metrics)?.[1] ?? 0);
    }
    const replayed = Number(recovered[1]);
    const ms = Number(recovered[2]);
    console.log(
      `recovery: ${replayed} records (${(journalBytes / 1e6).toFixed(1)} MB of journal, ${devices} devices) replayed in ${ms} ms` +
        ` = ${Math.round(replayed / (ms / 1_000))} records/s; the checkpoint after it: ${(checkpoint / 1e6).toFixed(2)} MB` +
        ` in ${(checkpointSeconds * 1_000).toFixed(0)} ms`,
    );
  } finally {
    await gateway.stop();
  }
}

function line(r: Run): string {
  return (
    `rate ${r.rate}/s QoS ${r.qos}${r.windowMs > 0 ? ` window ${r.windowMs} ms` : ''}: achieved ${Math.round(r.achieved)}/s, ${r.events} events` +
    (r.qos === 1 ? `, ${r.acked} acked` : '') +
    `, ${r.commands} commands · latency p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms max ${r.max.toFixed(1)} ms` +
    ` · ${Math.round(r.bytesPerEvent)} B written/event (journal ${Math.round(r.journalBytesPerEvent)} B)` +
    ` · ${r.recordsPerCommit.toFixed(1)} records/commit, ${r.syncedCommits} fdatasyncs`
  );
}

interface GatewayChild {
  child: ChildProcess;
  output(): string;
  mqttPort: number;
  httpPort: number;
  /** write_bytes of the process once it listens: start-up (LevelDB creation) is not the load's. */
  startupWriteBytes: number;
  stop(): Promise<void>;
}

async function startGateway(args: string[]): Promise<GatewayChild> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'run',
      '--allow-anonymous',
      '--mqtt-host',
      '127.0.0.1',
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--log-level',
      'warn',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 20_000;
  let mqtt: RegExpExecArray | null = null;
  let http: RegExpExecArray | null = null;
  while (!(mqtt && http)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`gateway did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 20));
    mqtt = /mqtt listening on \S+:(\d+)/.exec(out);
    http = /http listening on \S+:(\d+)/.exec(out);
  }
  await new Promise((r) => setTimeout(r, 300));
  return {
    child,
    output: () => out,
    mqttPort: Number(mqtt[1]),
    httpPort: Number(http[1]),
    startupWriteBytes: await writeBytes(child.pid ?? 0),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function writeBytes(pid: number): Promise<number> {
  const io = await readFile(`/proc/${pid}/io`, 'utf8');
  return Number(/^write_bytes: (\d+)$/m.exec(io)?.[1] ?? NaN);
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

function metricValue(text: string, name: string, labels: string): number {
  const m = new RegExp(`^${name}\\{[^}]*${labels.replace(/"/g, '\\"')}[^}]*\\} (\\S+)$`, 'm').exec(text);
  return Number(m?.[1] ?? 0);
}

async function filesystemOf(path: string): Promise<string> {
  const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' '));
  let best = { dir: '', type: 'unknown', dev: '' };
  for (const [dev, dir, type] of mounts) {
    if (dir && path.startsWith(dir) && dir.length > best.dir.length)
      best = { dir, type: type ?? '', dev: dev ?? '' };
  }
  return `${best.type} (${best.dev} on ${best.dir})`;
}

await main();
