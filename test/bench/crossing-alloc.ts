import v8 from 'node:v8';

/**
 * Bytes this thread's V8 heap allocated from now until `stop()`: its growth plus what each collection freed
 * (v8.GCProfiler), as test/bench/alloc-probe.ts counts them for the gateway.
 */
export function allocCounter(): { stop(): number } {
  const profiler = new v8.GCProfiler();
  const usedAtStart = v8.getHeapStatistics().used_heap_size;
  profiler.start();
  return {
    stop() {
      const result = profiler.stop() as unknown as
        | {
            statistics: Array<{
              beforeGC: { heapStatistics: { usedHeapSize: number } };
              afterGC: { heapStatistics: { usedHeapSize: number } };
            }>;
          }
        | undefined;
      let freed = 0;
      for (const s of result?.statistics ?? [])
        freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
      return v8.getHeapStatistics().used_heap_size - usedAtStart + freed;
    },
  };
}
