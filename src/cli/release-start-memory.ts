import { releaseUnusedMemory } from '../runtime/index.js';

/**
 * Past this much heap in use once recovered, no collection is made: the state recovered is large (a long journal
 * tail, many groups), a collection of it would stop the gateway for a second or more while devices reconnect, and
 * what it gives back (the young generation, tens of MB) is small beside that state.
 */
export const RELEASE_MAX_HEAP_USED = 64 * 1024 * 1024;

/**
 * One collection that gives back what the start committed and no longer needs. A start allocates much that
 * stays (modules, rules, compiled CEL) and much that does not; V8 grows its young generation while so much
 * survives, to 32 MiB of semi-spaces here, and keeps it, touched, until its memory reducer notices an idle
 * process (seconds later, and not under steady traffic). A collection of V8's "last resort" flavour
 * (`releaseUnusedMemory`) shrinks the young generation to its least and releases the free pages; it grows again
 * with the traffic that needs it. Takes some tens of milliseconds. Returns false when this V8 offers no such
 * collection, or when more than `maxHeapUsed` bytes of the heap are in use (none is made then).
 */
export function releaseStartMemory(maxHeapUsed = Infinity): boolean {
  return releaseUnusedMemory(maxHeapUsed);
}
