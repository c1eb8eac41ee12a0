// The decision side of the crossing test: decodes each journal record that crosses, and answers every event whose
// reading is above 30 with a command record back, in the same order.
import { parentPort } from 'node:worker_threads';
import { decodeRecord } from '../../src/runtime/index.js';
import { Crossing } from '../../src/threads/index.js';

const port = parentPort;
if (port === null) throw new Error('run as a worker');
const crossing = new Crossing(port);
const encoder = new TextEncoder();
crossing.onRecords((batch, start, end) => {
  const record = decodeRecord(batch.subarray(start, end));
  if (record?.kind !== 'event') return;
  const temp = (record.event.data as { temp?: number }).temp ?? 0;
  if (temp > 30) crossing.send(encoder.encode(`${record.event.actor}:${temp}`));
});
