// The decision side of test/bench/crossing.ts: decodes every record that crosses (as the decision loop would before
// applying it), answers every event above 30 with a command record back, and reports its own thread's CPU and
// allocation when asked.
import { parentPort, type MessagePort } from 'node:worker_threads';
import { decodeRecord } from '../../src/runtime/index.js';
import { Crossing } from '../../src/threads/index.js';
import { allocCounter } from './crossing-alloc.js';

const port = parentPort;
if (port === null) throw new Error('run as a worker');
const crossing = new Crossing(port);
const encoder = new TextEncoder();
let decoded = 0;
crossing.onRecords((batch, start, end) => {
  const record = decodeRecord(batch.subarray(start, end));
  decoded++;
  if (record?.kind !== 'event') return;
  const temp = (record.event.data as { temp?: number }).temp ?? 0;
  if (temp > 30) crossing.send(encoder.encode(`${record.event.actor}:${temp}`));
});
// Control messages come on a port of their own, so they never mix with the batches.
port.on('message', (message: { control?: MessagePort } | undefined) => {
  const control = message?.control;
  if (control === undefined) return;
  // One GC profiler at a time: a second one started beside the first stalls the thread.
  let counter: { stop(): number } | undefined;
  let cpu = process.threadCpuUsage();
  control.on('message', (what: string) => {
    if (what === 'start') {
      counter = allocCounter();
      cpu = process.threadCpuUsage();
      decoded = 0;
      control.postMessage('started');
      return;
    }
    const used = process.threadCpuUsage(cpu);
    control.postMessage({ cpuUs: used.user + used.system, bytes: counter?.stop() ?? 0, decoded });
    counter = undefined;
  });
});
