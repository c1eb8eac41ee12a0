// What a checkpoint allocates and costs for the QoS 1 publishes the duplicate filter remembers: its copy at the
// checkpoint's instant (`DuplicateFilter.snapshot`) and its encoding, a chunk of 2,000 entries at a time as the
// gateway encodes them. DEVICES clients with PER_CLIENT publishes each (the filter keeps the last 1,024 per device,
// for 10 minutes: at 5 events/s per device a gateway holds them all after 3.5 minutes), counted as alloc-probe.ts
// counts (the heap's growth plus what each collection freed; typed arrays' and Buffers' contents are outside it).
// node --import tsx test/bench/checkpoint-duplicates-alloc.ts [--devices 1000] [--per-client 1024] [--rounds 5]
import { parseArgs } from 'node:util';
import { CheckpointEncoder, type CheckpointSource } from '../../src/runtime/checkpoint.js';
import { DuplicateFilter } from '../../src/runtime/duplicate-filter.js';
import { allocatedSync } from './allocated.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    'per-client': { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '5' },
  },
});
const devices = Number(values.devices);
const perClient = Number(values['per-client']);

const filter = new DuplicateFilter();
let at = 1_765_000_000_000;
for (let n = 0; n < perClient; n++) {
  for (let d = 0; d < devices; d++)
    filter.remember(`dev-${d}`, 1, (n % 65_535) + 1, (n * 2_654_435_761 + d) >>> 0, at++);
}

function checkpoint(): number {
  const duplicates = filter.snapshot();
  const source = {
    version: 1,
    seq: 1,
    at,
    engine: { version: 1, scenarios: [] },
    arbiter: { version: 1, active: [], cooldowns: [], contacts: [] },
    lastSeen: [],
    duplicates,
  } as unknown as CheckpointSource;
  const encoder = new CheckpointEncoder(source, 2_000);
  const copies = encoder.copies();
  let bytes = 0;
  while (copies.next().done !== true) for (const chunk of encoder.take()) bytes += chunk.length;
  return bytes;
}

const entries = devices * perClient;
let fileBytes = 0;
checkpoint();
for (let r = 0; r < Number(values.rounds); r++) {
  const a = allocatedSync(() => (fileBytes = checkpoint()), 1);
  process.stdout.write(
    `${entries} remembered publishes: ${(a.bytes / 1_048_576).toFixed(1)} MB on the heap ` +
      `(${(a.bytes / entries).toFixed(0)} B per entry), ${(a.cpuUs / 1000).toFixed(0)} ms CPU, ` +
      `${(fileBytes / 1_048_576).toFixed(1)} MB encoded\n`,
  );
}
