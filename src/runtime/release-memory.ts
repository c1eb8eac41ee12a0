import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** V8's `gc` extension: `last-resort` is the collection V8 runs under memory pressure. */
type GcExtension = (options: { type: 'major'; flavor: 'last-resort' }) => void;

/**
 * One collection of V8's "last resort" flavour: full collections until nothing more is freed, the old generation
 * compacted, the young generation shrunk to its least, and the pages freed given back to the system (V8 otherwise
 * keeps them for the next growth, and its memory reducer, which would give them back, waits for an idle process).
 * The gateway stops for its length: tens of milliseconds on a small heap, more as the heap in use grows. Returns
 * false when this V8 offers no such collection, or when more than `maxHeapUsed` bytes of the heap are in use (none
 * is made then).
 */
export function releaseUnusedMemory(maxHeapUsed = Infinity): boolean {
  if (process.memoryUsage().heapUsed > maxHeapUsed) return false;
  // The `gc` function is given to contexts made while the flag is on: one such context, then the flag off again,
  // so that no other context gets it.
  setFlagsFromString('--expose-gc');
  let gc: unknown;
  try {
    gc = runInNewContext('typeof gc === "function" ? gc : undefined');
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  if (typeof gc !== 'function') return false;
  (gc as GcExtension)({ type: 'major', flavor: 'last-resort' });
  return true;
}
