// Loaded into the gateway under test (`NODE_OPTIONS=--import=…/alloc-probe.ts`, run by Node's type stripping, so
// it imports nothing but Node): the first SIGUSR2 opens a measuring window, the second closes it and writes
// what V8 allocated and how long its collections paused the main thread to $VIGIL_ALLOC_PROBE_OUT (JSON).
//
// Bytes allocated: V8 exposes no allocation counter, but between two collections its heap only grows by what
// was allocated, and each collection's own before/after sizes (v8.GCProfiler) say what it freed. So
// allocated = used at the end − used at the start + Σ (used before − used after) over the collections in the
// window. It counts every JavaScript object (buffers' contents live outside the heap and are not counted);
// memory a major collection frees by sweeping after its pause is not seen, which makes it a slight undercount
// when major collections run (they are rare in steady state; the figures say how many ran).
// Pauses: perf_hooks' 'gc' entries, the main thread's time in each collection.
// With $VIGIL_ALLOC_PROBE_HEAP_PROF set to a file, V8's sampling heap profiler runs over the window too,
// keeping the samples of objects already collected, and its profile (bytes by allocating function, scaled to
// an estimate of all allocations) is written there.
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

const out = process.env.VIGIL_ALLOC_PROBE_OUT;
const heapProf = process.env.VIGIL_ALLOC_PROBE_HEAP_PROF;

interface GcStat {
  gcType: string;
  cost: number;
  beforeGC: { heapStatistics: { usedHeapSize: number } };
  afterGC: { heapStatistics: { usedHeapSize: number } };
}

/** What the probe writes. */
export interface AllocWindow {
  allocatedBytes: number;
  windowMs: number;
  /** Main-thread pause of each collection in the window, ms. */
  pausesMs: number[];
  minor: number;
  major: number;
  /** Bytes the sampling heap profiler attributes to the window, when it ran (a second estimate). */
  sampledBytes?: number;
}

interface Open {
  usedAtStart: number;
  startedMs: number;
  profiler: v8.GCProfiler;
  pausesMs: number[];
  observer: PerformanceObserver;
  session: Session | undefined;
}

let open: Open | undefined;

function post(session: Session, method: string, params?: object): Promise<unknown> {
  return new Promise((resolve, reject) =>
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

function start(): void {
  const pausesMs: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) pausesMs.push(e.duration);
  });
  observer.observe({ entryTypes: ['gc'] });
  let session: Session | undefined;
  if (heapProf !== undefined) {
    session = new Session();
    session.connect();
    void post(session, 'HeapProfiler.startSampling', {
      samplingInterval: 16_384,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  }
  const profiler = new v8.GCProfiler();
  profiler.start();
  open = {
    usedAtStart: v8.getHeapStatistics().used_heap_size,
    startedMs: performance.now(),
    profiler,
    pausesMs,
    observer,
    session,
  };
}

interface SampledNode {
  selfSize: number;
  children?: SampledNode[];
}

function totalSelf(node: SampledNode): number {
  let sum = node.selfSize;
  for (const c of node.children ?? []) sum += totalSelf(c);
  return sum;
}

async function stop(o: Open): Promise<void> {
  const stats = (o.profiler.stop()?.statistics ?? []) as GcStat[];
  const usedAtEnd = v8.getHeapStatistics().used_heap_size;
  const windowMs = performance.now() - o.startedMs;
  let freed = 0;
  let minor = 0;
  for (const g of stats) {
    freed += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
    if (g.gcType === 'Scavenge' || g.gcType === 'MinorMarkSweep') minor++;
  }
  // Entries of the last collections arrive on a later turn.
  await new Promise((resolve) => setImmediate(resolve));
  o.observer.disconnect();
  const result: AllocWindow = {
    allocatedBytes: usedAtEnd - o.usedAtStart + freed,
    windowMs,
    pausesMs: o.pausesMs,
    minor,
    major: stats.length - minor,
  };
  if (o.session !== undefined && heapProf !== undefined) {
    const { profile } = (await post(o.session, 'HeapProfiler.stopSampling')) as {
      profile: { head: SampledNode };
    };
    o.session.disconnect();
    result.sampledBytes = totalSelf(profile.head);
    writeFileSync(heapProf, JSON.stringify(profile));
  }
  if (out === undefined) return;
  writeFileSync(`${out}.tmp`, JSON.stringify(result));
  renameSync(`${out}.tmp`, out);
}

if (out !== undefined) {
  // The harness signals only once it sees this: a gateway that did not load the probe would die of SIGUSR2.
  writeFileSync(`${out}.ready`, String(process.pid));
  process.on('SIGUSR2', () => {
    if (open === undefined) {
      start();
      return;
    }
    const o = open;
    open = undefined;
    stop(o).catch((err: unknown) => process.stderr.write(`alloc-probe: ${String(err)}\n`));
  });
}
