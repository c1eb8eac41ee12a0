// What the crossing between the broker's thread and the decision loop's costs per event (src/threads/crossing.ts):
// events as the journal records them (encodeRecord), sent in batches per turn to a worker that decodes each one and
// answers 5 in 100 with a command record, as the two-thread split would carry them. Beside it, the same encoding
// with no crossing: what the single-thread gateway already pays for its journal. Figures per event: CPU of each
// thread (process.threadCpuUsage) and bytes each thread's heap allocated (v8.GCProfiler). Not a test: run on purpose.
// node --import tsx test/bench/crossing.ts [--events N] [--per-turn N] [--rounds N]
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { setImmediate as turn } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { encodeRecord } from '../../src/runtime/index.js';
import type { Event } from '../../src/shared/index.js';
import { Crossing } from '../../src/threads/index.js';
import { allocCounter } from './crossing-alloc.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '400000' },
    'per-turn': { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
  },
});
const total = Number(values.events);
const perTurn = Number(values['per-turn']);
const rounds = Number(values.rounds);

// The simulator's telemetry shape; about 5 in 100 above 30, as the benchmark's overheat rate.
const events: Event[] = Array.from({ length: 1_000 }, (_, i) => ({
  actor: `dev-${i}`,
  type: 'telemetry',
  at: 1_765_000_000_000 + i,
  data: {
    temp: i % 20 === 0 ? 31.5 : 21.25 + (i % 7),
    hum: 40 + (i % 11),
    bat: 3.9,
    ts: 1_765_000_000_000 + i,
  },
  source: 'device',
}));

interface Figures {
  mainCpuUs: number;
  mainBytes: number;
  workerCpuUs: number;
  workerBytes: number;
}

async function encodeOnly(): Promise<Figures> {
  const counter = allocCounter();
  const cpu = process.threadCpuUsage();
  let bytes = 0;
  for (let sent = 0; sent < total;) {
    for (let i = 0; i < perTurn && sent < total; i++, sent++) {
      bytes += encodeRecord({ kind: 'event', event: events[sent % events.length] as Event }).length;
    }
    await turn();
  }
  const used = process.threadCpuUsage(cpu);
  if (bytes === 0) throw new Error('nothing encoded');
  return {
    mainCpuUs: (used.user + used.system) / total,
    mainBytes: counter.stop() / total,
    workerCpuUs: 0,
    workerBytes: 0,
  };
}

async function crossed(worker: Worker, control: MessagePort, crossing: Crossing): Promise<Figures> {
  let commands = 0;
  crossing.onRecords(() => commands++);
  const expected = Math.floor(total / 20) + (total % 20 === 0 ? 0 : 1);
  const started = new Promise((resolve) => control.once('message', resolve));
  control.postMessage('start');
  await started;
  const counter = allocCounter();
  const cpu = process.threadCpuUsage();
  for (let sent = 0; sent < total;) {
    for (let i = 0; i < perTurn && sent < total; i++, sent++) {
      crossing.send(encodeRecord({ kind: 'event', event: events[sent % events.length] as Event }));
    }
    await turn();
  }
  while (commands < expected) await new Promise((r) => setTimeout(r, 1));
  const used = process.threadCpuUsage(cpu);
  const mainBytes = counter.stop();
  const reply = new Promise<{ cpuUs: number; bytes: number; decoded: number }>((resolve) =>
    control.once('message', resolve),
  );
  control.postMessage('stop');
  const w = await reply;
  if (w.decoded !== total) throw new Error(`the worker decoded ${w.decoded} of ${total}`);
  void worker;
  return {
    mainCpuUs: (used.user + used.system) / total,
    mainBytes: mainBytes / total,
    workerCpuUs: w.cpuUs / total,
    workerBytes: w.bytes / total,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const worker = new Worker(new URL('./crossing-worker.ts', import.meta.url), {
  execArgv: ['--import', 'tsx'],
});
const { port1, port2 } = new MessageChannel();
// The crossing ignores messages that are not its own.
worker.postMessage({ control: port2 }, [port2]);
const crossing = new Crossing(worker);
const results: { encode: Figures[]; crossing: Figures[] } = { encode: [], crossing: [] };
await crossed(worker, port1, crossing); // warm-up: both threads' code optimised, buffers in circulation
for (let r = 0; r < rounds; r++) {
  results.encode.push(await encodeOnly());
  results.crossing.push(await crossed(worker, port1, crossing));
}
const row = (name: string, fs: Figures[]): string => {
  const m = (k: keyof Figures): string => median(fs.map((f) => f[k])).toFixed(k.endsWith('Bytes') ? 0 : 2);
  return `| ${name} | ${m('mainCpuUs')} | ${m('mainBytes')} | ${m('workerCpuUs')} | ${m('workerBytes')} |`;
};
process.stdout.write(
  `${total} events per round, ${perTurn} per turn, median of ${rounds} rounds; batches sent ${crossing.stats.batches}, ` +
    `buffers allocated ${crossing.stats.allocated}\n\n` +
    '| path | broker thread CPU µs/event | broker thread B/event | decision thread CPU µs/event | decision thread B/event |\n' +
    '| --- | --- | --- | --- | --- |\n' +
    `${row('encode only (one thread)', results.encode)}\n${row('encode, cross, decode, commands back', results.crossing)}\n`,
);
crossing.close();
port1.close();
await worker.terminate();
