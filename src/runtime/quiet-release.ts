import { releaseUnusedMemory } from './release-memory.js';

/** Inputs a second at or under which the gateway is quiet (so is a tenth of its busiest rate since the last release). */
export const QUIET_INPUTS_PER_SECOND = 20;
/**
 * What the process must have grown by, in RSS, since its least after the last release (or since it went live), for a
 * release to be worth its pause.
 */
export const RELEASE_MIN_GROWTH_BYTES = 32 * 1024 * 1024;
/** The least time between two releases, however the traffic comes and goes. */
export const RELEASE_MIN_INTERVAL_MS = 10 * 60_000;
/** How often the rate of inputs is looked at. */
export const QUIET_CHECK_MS = 5_000;

/** The figures of `process.memoryUsage()` a release looks at and reports. */
export interface MemoryReading {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

/** One release: the process's memory before and after it, and how long it stopped the gateway. */
export interface ReleaseReport {
  before: MemoryReading;
  after: MemoryReading;
  pauseMs: number;
}

export interface QuietReleaseOptions {
  /** How long the inputs must stay quiet before a release; 0 never releases. */
  quietMs: number;
  /** Inputs applied so far (a count that only grows). */
  inputs: () => number;
  /** Inputs are waiting (a queue past its mark, a slow disk): never quiet then, whatever the rate applied. */
  busy: () => boolean;
  /** Time in ms (gateway time, or virtual in tests). */
  now: () => number;
  /**
   * What is owed before a collection and would undo it if it came after (the checkpoint of what happened since the
   * last): started once a release is due, the release made at the first check after it has settled.
   */
  beforeRelease?: () => Promise<unknown>;
}

function reading(): MemoryReading {
  const { rss, heapUsed, heapTotal, external } = process.memoryUsage();
  return { rss, heapUsed, heapTotal, external };
}

/**
 * Gives V8's unused memory back once a busy gateway has gone quiet. After a burst (a reconnect storm, a churn of
 * devices) V8 keeps the heap it grew to, committed and not used, and the pages it freed, for the next growth; its
 * memory reducer gives them back only to a process with little to do for a while, which a gateway with timers firing
 * and an outbox draining seldom is. `check`, called every `QUIET_CHECK_MS`, makes one `releaseUnusedMemory` collection
 * when the inputs applied have stayed quiet for `quietMs`, the process has grown by `RELEASE_MIN_GROWTH_BYTES` since
 * its least, and the last release is `RELEASE_MIN_INTERVAL_MS` ago: rarely, and never under load, as the collection
 * stops the gateway (docs/benchmarks.md, "Memory given back when quiet"). What `beforeRelease` owes (a checkpoint) is
 * done first, so that it does not take back what the collection gave up; the inputs must stay quiet meanwhile.
 */
export class QuietRelease {
  readonly #o: QuietReleaseOptions;
  #lastAt: number | undefined;
  #lastInputs = 0;
  #busiest = 0;
  #quietSince: number | undefined;
  #floorRss = Infinity;
  #releasedAt = Number.NEGATIVE_INFINITY;
  /** `beforeRelease` started for the release due, and whether it has settled. */
  #owed: { settled: boolean } | undefined;

  constructor(options: QuietReleaseOptions) {
    this.#o = options;
  }

  /** Looks at the inputs since the last check; releases, and says what it released, when the time has come. */
  check(): ReleaseReport | undefined {
    if (this.#o.quietMs <= 0) return undefined;
    const now = this.#o.now();
    const inputs = this.#o.inputs();
    const rss = process.memoryUsage.rss();
    this.#floorRss = Math.min(this.#floorRss, rss);
    const since = this.#lastAt;
    const elapsedMs = since === undefined ? 0 : now - since;
    if (since !== undefined && elapsedMs <= 0) return undefined;
    const rate = since === undefined ? 0 : ((inputs - this.#lastInputs) * 1_000) / elapsedMs;
    this.#lastAt = now;
    this.#lastInputs = inputs;
    if (since === undefined) return undefined;
    this.#busiest = Math.max(this.#busiest, rate);
    const quiet = !this.#o.busy() && (rate <= QUIET_INPUTS_PER_SECOND || rate * 10 <= this.#busiest);
    if (!quiet) {
      this.#quietSince = undefined;
      this.#owed = undefined;
      return undefined;
    }
    this.#quietSince ??= since;
    if (now - this.#quietSince < this.#o.quietMs) return undefined;
    if (now - this.#releasedAt < RELEASE_MIN_INTERVAL_MS) return undefined;
    if (rss - this.#floorRss < RELEASE_MIN_GROWTH_BYTES) return undefined;
    if (!this.#settled()) return undefined;
    return this.#release(now, rate);
  }

  /** Whether what is owed before the release due (`beforeRelease`) is done; starts it the first time it is asked. */
  #settled(): boolean {
    const { beforeRelease } = this.#o;
    if (beforeRelease === undefined) return true;
    if (this.#owed === undefined) {
      const owed = { settled: false };
      this.#owed = owed;
      // A failure is the owner's to report (a checkpoint logs its own); the release goes ahead.
      void beforeRelease()
        .catch(() => undefined)
        .finally(() => (owed.settled = true));
      return false;
    }
    return this.#owed.settled;
  }

  #release(now: number, rate: number): ReleaseReport | undefined {
    const before = reading();
    const startedMs = performance.now();
    if (!releaseUnusedMemory()) return undefined;
    const pauseMs = performance.now() - startedMs;
    const after = reading();
    this.#releasedAt = now;
    this.#floorRss = after.rss;
    this.#busiest = rate;
    this.#quietSince = undefined;
    this.#owed = undefined;
    return { before, after, pauseMs };
  }
}
