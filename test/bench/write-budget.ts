// The write budget: what the gateway writes to its storage (flash, on a gateway) per event and per idle hour.
// Bytes are the kernel's count for the process (/proc/PID/io `write_bytes`: what reached the block layer, page
// cache write-back included); syncs are counted by running the gateway under strace (seccomp-filtered to the sync
// calls, so it does not slow the rest), each attributed to the file it synced. See docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CloudBroker } from './cloud-broker.js';
import { LoadGenClient } from './load-gen-client.js';
import { startVigil, type SystemUnderTest } from './systems.js';
import type { FleetShape, VigilSetup } from './vigil-setup.js';

/** Where a sync went: the journal's segments, its directory, the checkpoints, or LevelDB (everything else). */
export type SyncTarget = 'journal' | 'journal-dir' | 'checkpoint' | 'leveldb';

export interface BudgetPoint {
  qos: 0 | 1;
  rate: number;
  /**
   * Inputs recorded in the journal during the window (device events, and the few timer firings): the figures are
   * per recorded input, so that a gateway running behind its load is not credited with what it has yet to write.
   */
  events: number;
  /** Device events taken in during the window, and those refused by a full queue. */
  takenIn: number;
  refused: number;
  /**
   * Inputs waiting to be recorded at the end of the window, when more than a second of the load: the gateway ran
   * behind, and the figures are not a cost per event (what it had yet to write is left out).
   */
  behind: number | null;
  seconds: number;
  bytesPerEvent: number;
  /** Of those, appended to the journal (its own count), and checkpoints written in the window. */
  journalBytesPerEvent: number;
  checkpointBytesPerEvent: number;
  syncsPerEvent: number | null;
  syncsPerSecond: number | null;
  syncsBy: Partial<Record<SyncTarget, number>> | null;
}

export interface BudgetIdle {
  devices: number;
  /** How long it was measured, after how long connected. */
  measuredMinutes: number;
  settledMinutes: number;
  bytes: number;
  /** `bytes` scaled to an hour. */
  bytesPerHour: number;
  journalBytesPerHour: number;
  checkpointBytesPerHour: number;
  checkpoints: number;
  syncsPerHour: number | null;
  syncsBy: Partial<Record<SyncTarget, number>> | null;
}

export interface WriteBudgetRecord {
  /** How syncs were counted: strace, or not at all (strace missing). */
  syncCounting: 'strace' | 'none';
  points: BudgetPoint[];
  idle: BudgetIdle | undefined;
}

export interface WriteBudgetOptions {
  setup: VigilSetup;
  cloud: CloudBroker;
  fleet: Pick<FleetShape, 'sites' | 'customers'>;
  secret: string;
  seed: number;
  devices: number;
  points: ReadonlyArray<{ qos: 0 | 1; rate: number }>;
  warmupMs: number;
  measureMs: number;
  /** 0 skips the idle run. */
  idleDevices: number;
  idleSettleMs: number;
  idleMeasureMs: number;
  log: (message: string) => void;
}

/** The targets of the budget (issue: years on a gateway). */
export const BUDGET_TARGETS = { qos0BytesPerEvent: 300, idleBytesPerHourAt1000: 10 * 1024 * 1024 };

const SYNC_CALLS = ['fsync', 'fdatasync', 'sync_file_range', 'syncfs', 'msync'];

function hasStrace(): boolean {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What the process has caused to be written to storage, in bytes. */
function writeBytes(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return Number(/^write_bytes:\s+(\d+)/m.exec(io)?.[1] ?? NaN);
}

/** The gateway's process: strace's child when it runs under strace. */
function gatewayPid(sut: SystemUnderTest, traced: boolean): number {
  if (!traced) return sut.pid;
  for (let i = 0; i < 100; i++) {
    try {
      const children = readFileSync(`/proc/${sut.pid}/task/${sut.pid}/children`, 'utf8').trim();
      if (children.length > 0) return Number(children.split(' ')[0]);
    } catch {
      // Not there yet.
    }
    execFileSync('sleep', ['0.05']);
  }
  throw new Error('the gateway process under strace was not found');
}

interface Reading {
  atMs: number;
  writeBytes: number;
  events: number;
  journalBytes: number;
  checkpoints: number;
  checkpointBytes: number;
  refused: number;
  records: number;
  /** Inputs waiting to be recorded or applied. */
  held: number;
}

function metricSum(text: string, name: string, labels: readonly string[] = []): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (!labels.every((l) => rest.includes(l))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

async function read(sut: SystemUnderTest, pid: number): Promise<Reading> {
  const text = await sut.metrics();
  return {
    atMs: Date.now(),
    writeBytes: writeBytes(pid),
    events: metricSum(text, 'vigil_events_in_total', ['source="device"']),
    journalBytes: metricSum(text, 'vigil_journal_bytes_total'),
    checkpoints: metricSum(text, 'vigil_checkpoints_total', ['result="written"']),
    checkpointBytes: metricSum(text, 'vigil_checkpoint_bytes'),
    refused: metricSum(text, 'vigil_queue_refused_total') + metricSum(text, 'vigil_events_shed_total'),
    records: metricSum(text, 'vigil_journal_records_total'),
    held: metricSum(text, 'vigil_journal_held'),
  };
}

/** The sync calls strace saw between two moments (ms since the epoch), by the file they synced. */
function syncsBetween(trace: string, fromMs: number, toMs: number): Partial<Record<SyncTarget, number>> {
  const by: Partial<Record<SyncTarget, number>> = {};
  const call = new RegExp(`^\\d+\\s+(\\d+\\.\\d+) (${SYNC_CALLS.join('|')})\\(\\d+<([^>]*)>`);
  for (const line of trace.split('\n')) {
    const m = call.exec(line);
    if (!m) continue;
    const atMs = Number(m[1]) * 1_000;
    if (atMs < fromMs || atMs > toMs) continue;
    const path = m[3] ?? '';
    const target: SyncTarget = path.includes('checkpoint')
      ? 'checkpoint'
      : path.endsWith('.wal')
        ? 'journal'
        : path.endsWith('/journal')
          ? 'journal-dir'
          : 'leveldb';
    by[target] = (by[target] ?? 0) + 1;
  }
  return by;
}

function total(by: Partial<Record<SyncTarget, number>>): number {
  return Object.values(by).reduce((a, b) => a + b, 0);
}

interface Traced {
  sut: SystemUnderTest;
  pid: number;
  /** Stops the gateway; resolves to strace's output when traced. */
  stop(): Promise<string | undefined>;
}

async function startTraced(o: WriteBudgetOptions, traced: boolean): Promise<Traced> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-budget-'));
  const traceFile = traced ? join(dir, 'syncs.txt') : undefined;
  const wrapper =
    traceFile === undefined
      ? undefined
      : [
          'strace',
          '-f',
          '-qq',
          '--seccomp-bpf',
          '-y',
          '-ttt',
          '-e',
          `trace=${SYNC_CALLS.join(',')}`,
          '-e',
          'signal=none',
          '-o',
          traceFile,
        ];
  const sut = await startVigil(o.setup, {
    cloudUrl: o.cloud.url,
    rulesDir: o.setup.shippedRulesDir,
    wrapper,
  });
  const pid = gatewayPid(sut, traced);
  return {
    sut,
    pid,
    stop: async () => {
      // The gateway first, so that it stops as users stop it; strace ends with it.
      if (traced) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // Already gone.
        }
      }
      await sut.stop();
      const trace = traceFile === undefined ? undefined : await readFile(traceFile, 'utf8').catch(() => '');
      await rm(dir, { recursive: true, force: true });
      return trace;
    },
  };
}

async function loadPoint(
  o: WriteBudgetOptions,
  t: Traced,
  gen: LoadGenClient,
  point: { qos: 0 | 1; rate: number },
): Promise<{ before: Reading; after: Reading }> {
  const loaded = gen.request(
    {
      kind: 'load',
      rate: point.rate,
      qos: point.qos,
      warmupMs: o.warmupMs,
      measureMs: o.measureMs,
      drainMs: 2_000,
    },
    'loaded',
  );
  await sleep(o.warmupMs);
  const before = await read(t.sut, t.pid);
  await sleep(o.measureMs);
  const after = await read(t.sut, t.pid);
  await loaded;
  return { before, after };
}

async function loadPoints(o: WriteBudgetOptions, traced: boolean): Promise<BudgetPoint[]> {
  const points: BudgetPoint[] = [];
  for (const point of o.points) {
    // A fresh gateway for each point: what one point left to write (a checkpoint, compactions) is not the next's.
    const t = await startTraced(o, traced);
    const gen = LoadGenClient.start();
    let window: { before: Reading; after: Reading };
    let trace: string | undefined;
    try {
      await gen.request(
        {
          kind: 'connect',
          url: t.sut.url,
          devices: o.devices,
          seed: o.seed,
          ...o.fleet,
          mode: 'vigil',
          secret: o.secret,
          cloudUrl: o.cloud.url,
        },
        'connected',
      );
      window = await loadPoint(o, t, gen, point);
    } finally {
      await gen.stop();
      trace = await t.stop();
    }
    const { before, after } = window;
    const refused = after.refused - before.refused;
    const events = Math.max(1, after.records - before.records);
    const seconds = (after.atMs - before.atMs) / 1_000;
    const syncsBy = trace === undefined ? null : syncsBetween(trace, before.atMs, after.atMs);
    const syncs = syncsBy === null ? null : total(syncsBy);
    const record: BudgetPoint = {
      ...point,
      events,
      takenIn: after.events - before.events,
      refused,
      behind: after.held > point.rate ? after.held : null,
      seconds: round(seconds, 1),
      bytesPerEvent: round((after.writeBytes - before.writeBytes) / events, 1),
      journalBytesPerEvent: round((after.journalBytes - before.journalBytes) / events, 1),
      checkpointBytesPerEvent: round(
        ((after.checkpoints - before.checkpoints) * after.checkpointBytes) / events,
        1,
      ),
      syncsPerEvent: syncs === null ? null : round(syncs / events, 4),
      syncsPerSecond: syncs === null ? null : round(syncs / seconds, 1),
      syncsBy,
    };
    o.log(
      `write budget QoS ${point.qos} ${point.rate}/s: ${record.bytesPerEvent} B/event written ` +
        `(journal ${record.journalBytesPerEvent}, checkpoints ${record.checkpointBytesPerEvent}), ` +
        `${record.syncsPerSecond ?? '–'} syncs/s ${JSON.stringify(syncsBy)}`,
    );
    points.push(record);
  }
  return points;
}

async function idleRun(o: WriteBudgetOptions, traced: boolean): Promise<BudgetIdle> {
  const t = await startTraced(o, traced);
  const gen = LoadGenClient.start();
  let before: Reading;
  let after: Reading;
  let trace: string | undefined;
  try {
    const opened = await gen.request(
      { kind: 'idle', url: t.sut.url, connections: o.idleDevices, idPrefix: 'dev-', secret: o.secret },
      'idle',
    );
    o.log(
      `write budget idle: ${opened.connected} devices connected; settling ${o.idleSettleMs / 60_000} min, ` +
        `then measuring ${o.idleMeasureMs / 60_000} min`,
    );
    await sleep(o.idleSettleMs);
    before = await read(t.sut, t.pid);
    await sleep(o.idleMeasureMs);
    after = await read(t.sut, t.pid);
  } finally {
    await gen.stop();
    trace = await t.stop();
  }
  const hours = (after.atMs - before.atMs) / 3_600_000;
  const syncsBy = trace === undefined ? null : syncsBetween(trace, before.atMs, after.atMs);
  const checkpoints = after.checkpoints - before.checkpoints;
  const record: BudgetIdle = {
    devices: o.idleDevices,
    measuredMinutes: round(hours * 60, 2),
    settledMinutes: round(o.idleSettleMs / 60_000, 2),
    bytes: after.writeBytes - before.writeBytes,
    bytesPerHour: Math.round((after.writeBytes - before.writeBytes) / hours),
    journalBytesPerHour: Math.round((after.journalBytes - before.journalBytes) / hours),
    checkpointBytesPerHour: Math.round((checkpoints * after.checkpointBytes) / hours),
    checkpoints,
    syncsPerHour: syncsBy === null ? null : Math.round(total(syncsBy) / hours),
    syncsBy,
  };
  o.log(
    `write budget idle: ${(record.bytesPerHour / 1024 / 1024).toFixed(2)} MB/hour (scaled from ` +
      `${record.measuredMinutes} min), ${record.syncsPerHour ?? '–'} syncs/hour ${JSON.stringify(syncsBy)}`,
  );
  return record;
}

/** The load points, each on a fresh gateway, then the idle run. */
export async function writeBudget(o: WriteBudgetOptions): Promise<WriteBudgetRecord> {
  const traced = hasStrace();
  if (!traced) o.log('write budget: strace is not installed; syncs are not counted');
  const points = await loadPoints(o, traced);
  const idle = o.idleDevices > 0 ? await idleRun(o, traced) : undefined;
  return { syncCounting: traced ? 'strace' : 'none', points, idle };
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** The section of the report. */
export function writeBudgetTable(r: WriteBudgetRecord): string {
  const mb = (b: number) => (b / 1024 / 1024).toFixed(2);
  const lines = [
    '| load | inputs recorded / s | B written / input | journal B / input | checkpoint B / input | syncs / s | syncs / input | target |',
    '| ---- | ------------------: | ----------------: | ----------------: | -------------------: | --------: | ------------: | ------ |',
  ];
  for (const p of r.points) {
    const target =
      p.qos === 0
        ? `≤ ${BUDGET_TARGETS.qos0BytesPerEvent} B/event: ${p.bytesPerEvent <= BUDGET_TARGETS.qos0BytesPerEvent ? 'met' : 'missed'}`
        : '–';
    const behind = p.behind === null ? '' : ` (behind: ${p.behind.toLocaleString('en-US')} waiting)`;
    lines.push(
      `| QoS ${p.qos}, ${p.rate.toLocaleString('en-US')}/s${behind} | ${Math.round(p.events / p.seconds).toLocaleString('en-US')} | ${p.bytesPerEvent} | ${p.journalBytesPerEvent} | ` +
        `${p.checkpointBytesPerEvent} | ${p.syncsPerSecond ?? '–'} | ${p.syncsPerEvent ?? '–'} | ${target} |`,
    );
  }
  if (r.idle) {
    const i = r.idle;
    const met = i.bytesPerHour <= BUDGET_TARGETS.idleBytesPerHourAt1000 ? 'met' : 'missed';
    lines.push(
      `| idle, ${i.devices.toLocaleString('en-US')} devices (${i.measuredMinutes} min after ${i.settledMinutes}, ×${(60 / i.measuredMinutes).toFixed(1)}) | ` +
        `– | ${mb(i.bytesPerHour)} MB/hour | ${mb(i.journalBytesPerHour)} MB/hour | ${mb(i.checkpointBytesPerHour)} MB/hour ` +
        `(${i.checkpoints} written) | ${i.syncsPerHour ?? '–'} / hour | – | ≤ 10 MB/hour: ${met} |`,
    );
  }
  const by = [
    ...r.points.map((p) => `QoS ${p.qos} ${p.rate}/s ${JSON.stringify(p.syncsBy)}`),
    ...(r.idle ? [`idle ${JSON.stringify(r.idle.syncsBy)}`] : []),
  ];
  return [...lines, '', `Syncs by file (${r.syncCounting}): ${by.join('; ')}`].join('\n');
}
