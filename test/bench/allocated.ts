import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import v8 from 'node:v8';

/** Per unit of work: bytes allocated (the heap's growth plus what each collection freed) and CPU µs. */
export interface Allocation {
  bytes: number;
  cpuUs: number;
}

interface Stretch {
  profiler: v8.GCProfiler;
  heapBefore: number;
  cpu: NodeJS.CpuUsage;
}

interface GcStatistics {
  beforeGC: { heapStatistics: { usedHeapSize: number } };
  afterGC: { heapStatistics: { usedHeapSize: number } };
}

function begin(): Stretch {
  const profiler = new v8.GCProfiler();
  profiler.start();
  return { profiler, heapBefore: v8.getHeapStatistics().used_heap_size, cpu: process.cpuUsage() };
}

function end(s: Stretch, units: number): Allocation {
  const used = process.cpuUsage(s.cpu);
  const heapAfter = v8.getHeapStatistics().used_heap_size;
  let freed = 0;
  for (const g of (s.profiler.stop()?.statistics ?? []) as GcStatistics[])
    freed += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
  return { bytes: (heapAfter - s.heapBefore + freed) / units, cpuUs: (used.user + used.system) / units };
}

/** What `work` allocates and costs, per one of its `units`. */
export function allocatedSync(work: () => void, units: number): Allocation {
  const s = begin();
  work();
  return end(s, units);
}

/** As `allocatedSync`, for work that waits. */
export async function allocated(work: () => Promise<void>, units: number): Promise<Allocation> {
  const s = begin();
  await work();
  return end(s, units);
}

/** `work`, with a sampling heap profile of it written to `file` when one is given (collected objects kept). */
export async function heapProfiled<T>(file: string | undefined, work: () => Promise<T>): Promise<T> {
  if (file === undefined) return work();
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 4_096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  const result = await work();
  const { profile } = await session.post('HeapProfiler.stopSampling');
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
  return result;
}
