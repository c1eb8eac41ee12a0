import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { allocated, heapProfiled, type Allocation } from './allocated.js';
import { pino } from 'pino';
import { Journal } from '../../src/runtime/journal.js';

const USAGE = `Usage: node --import tsx test/bench/journal-alloc.ts [options]

Bytes the journal allocates per record, on a real file: records kept at \`write\` (QoS 0 events) are appended in
one turn of the event loop and committed together, then the next ones. Counted as alloc-probe.ts counts (the
heap's growth plus what each collection freed), less what the loop alone allocates.

  --records-per-turn N  records appended in each turn (default 2; at 5k/s a commit carries one or two)
  --turns N             turns measured (default 20000)
  --heap-prof FILE      write a sampling heap profile of the measured run
  --help                this text
`;

const { values } = parseArgs({
  options: {
    help: { type: 'boolean', default: false },
    'records-per-turn': { type: 'string', default: '2' },
    turns: { type: 'string', default: '20000' },
    'heap-prof': { type: 'string' },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const perTurn = Number(values['records-per-turn']);
const turns = Number(values.turns);
// A telemetry event's record is about 130 bytes.
const payload = Buffer.alloc(130, 0x61);

async function run(journal: Journal | undefined, n: number): Promise<void> {
  for (let j = 0; j < n; j++) {
    for (let r = 0; r < perTurn; r++) journal?.append(payload, 'write');
    await (journal === undefined ? turn() : journal.recorded());
  }
}

function allocatedBy(journal: Journal | undefined, n: number): Promise<Allocation> {
  return allocated(() => run(journal, n), n * perTurn);
}

const dir = await mkdtemp(join(tmpdir(), 'vigil-journal-alloc-'));
const journal = await Journal.open({ dir, logger: pino({ level: 'silent' }) });
try {
  await run(journal, turns);
  const alone = await allocatedBy(undefined, turns);
  const with_ = await heapProfiled(values['heap-prof'], () => allocatedBy(journal, turns));
  process.stdout.write(
    `${perTurn} records a commit: the journal allocates ${(with_.bytes - alone.bytes).toFixed(0)} B per record ` +
      `(${with_.bytes.toFixed(0)} with the loop, ${alone.bytes.toFixed(0)} the loop alone), ` +
      `${(with_.cpuUs - alone.cpuUs).toFixed(1)} µs CPU per record\n`,
  );
} finally {
  await journal.close();
  await rm(dir, { recursive: true, force: true });
}
