import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { allocated, heapProfiled, type Allocation } from './allocated.js';
import type { Action } from '../../src/shared/index.js';
import { openStore, type Store } from '../../src/store/index.js';

const USAGE = `Usage: node [--expose-gc] --import tsx test/bench/outbox-alloc.ts [options]

Bytes the outboxes allocate per action, in a real LevelDB: each turn of the event loop decides one action that
goes upstream and to its device, and the turn after, the cloud and the device acknowledge it. Counted as
alloc-probe.ts counts (the heap's growth plus what each collection freed).

  --actions N       actions measured (default 20000)
  --heap-prof FILE  write a sampling heap profile of the measured run
  --pending N       instead: the heap the outbox retains per pending action, N queued and none delivered
                    (needs --expose-gc)
  --help            this text
`;

const { values } = parseArgs({
  options: {
    help: { type: 'boolean', default: false },
    actions: { type: 'string', default: '20000' },
    'heap-prof': { type: 'string' },
    pending: { type: 'string' },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const actions = Number(values.actions);

let k = 0;
/** An action as the decision loop makes one for `overheat`. */
function action(): Action {
  const i = k++;
  const at = 1_780_000_000_000 + i * 3;
  return {
    id: `${((i * 2_654_435_761) >>> 0).toString(16).padStart(8, '0')}${i.toString(16).padStart(24, '0')}`,
    gateway: 'gw-bench',
    scenario: 'overheat',
    action: 'inspect-device',
    actor: `dev-${i % 1_000}`,
    priority: 70,
    category: 'maintenance',
    decidedAt: at + 1,
    eventAt: at,
    payload: { temp: 80 + (i % 150) / 10, site: `site-${i % 5_000}` },
  };
}

async function run(store: Store, n: number): Promise<void> {
  let last: Action | undefined;
  for (let j = 0; j < n; j++) {
    const a = action();
    const writes: Array<Promise<unknown>> = [store.outbox.add(a), store.commands.add(a)];
    if (last !== undefined) {
      writes.push(store.outbox.markDelivered(last.id, last.decidedAt + 5));
      writes.push(store.commands.acknowledge(last.id, last.decidedAt + 5));
    }
    last = a;
    await turn();
    if (j % 64 === 63) await Promise.all(writes);
  }
  await store.outbox.markDelivered((last as Action).id, 0);
  await store.commands.acknowledge((last as Action).id, 0);
}

function allocatedBy(store: Store, n: number): Promise<Allocation> {
  return allocated(() => run(store, n), n);
}

/** What the loop allocates with no store: the actions, the turns and the promises it waits on. */
function bare(n: number): Promise<Allocation> {
  const nothing = (): Promise<void> => Promise.resolve();
  const none = {
    outbox: { add: nothing, markDelivered: nothing },
    commands: { add: nothing, acknowledge: nothing },
  } as unknown as Store;
  return allocatedBy(none, n);
}

/** Heap in use after a full collection (twice: the first may leave what finalizers free). */
function settledHeap(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('--pending needs node --expose-gc');
  gc();
  gc();
  return v8.getHeapStatistics().used_heap_size;
}

/** The heap the outbox retains per pending action: `n` queued (as the uplink does, a turn each), none delivered. */
async function retained(store: Store, n: number): Promise<void> {
  const before = settledHeap();
  for (let j = 0; j < n; j += 256) {
    const writes: Array<Promise<unknown>> = [];
    for (let i = j; i < Math.min(n, j + 256); i++) writes.push(store.outbox.add(action()));
    await Promise.all(writes);
  }
  const after = settledHeap();
  if (store.outbox.size !== n) throw new Error(`${store.outbox.size} queued, not ${n}`);
  process.stdout.write(
    `${n} actions pending: the outbox retains ${((after - before) / n).toFixed(0)} B per action ` +
      `(${((after - before) / 1024 / 1024).toFixed(1)} MiB of heap; ${(store.outbox.bytes / n).toFixed(0)} B each on disk)\n`,
  );
}

const dir = await mkdtemp(join(tmpdir(), 'vigil-outbox-alloc-'));
const store = await openStore(join(dir, 'data'));
try {
  if (values.pending !== undefined) {
    const n = Number(values.pending);
    await retained(store, n);
    // The drain with the cloud back: the first 100 in drain order, each acknowledged, then the next 100; when the
    // next ones are still being read back from disk, once they are in.
    const cpu = process.cpuUsage();
    const started = performance.now();
    let sent = 0;
    const held = new Set<string>();
    while (store.outbox.size > 0) {
      const next = store.outbox.next(100, held);
      if (next.length === 0) {
        const { loading } = store.outbox;
        if (loading === undefined) throw new Error(`${store.outbox.size} queued, none handed out`);
        await loading;
      }
      await Promise.all(next.map((a) => store.outbox.markDelivered(a.id, a.decidedAt + 5)));
      sent += next.length;
    }
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    process.stdout.write(
      `drained ${sent} in ${seconds.toFixed(2)} s: ${(sent / seconds).toFixed(0)} actions/s, ` +
        `${((used.user + used.system) / sent).toFixed(1)} µs CPU per action\n`,
    );
  } else {
    await run(store, actions);
    const alone = await bare(actions);
    const with_ = await heapProfiled(values['heap-prof'], () => allocatedBy(store, actions));
    process.stdout.write(
      `the outbox and the command outbox allocate ${(with_.bytes - alone.bytes).toFixed(0)} B per action ` +
        `(added to both, delivered and acknowledged; ${with_.bytes.toFixed(0)} with the loop, ` +
        `${alone.bytes.toFixed(0)} the loop alone), ${(with_.cpuUs - alone.cpuUs).toFixed(1)} µs CPU per action\n`,
    );
  }
} finally {
  await store.close();
  await rm(dir, { recursive: true, force: true });
}
