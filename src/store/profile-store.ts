import type { Profile } from '../shared/index.js';
import type { RootLevel, Sublevel } from './level-types.js';
import { LruCache } from './lru-cache.js';
import { storeIo } from './store-io.js';

/** What the cache knows about a device without going to disk. */
export type ProfilePeek =
  { readonly hit: true; readonly profile: Profile | undefined } | { readonly hit: false };

/** One profile to write with `putMany`. */
export interface ProfileEntry {
  id: string;
  profile: Profile;
}

export const DEFAULT_PROFILE_CACHE_ENTRIES = 100_000;
/** Profiles `prefetch` reads in one `getMany`. */
const PREFETCH_CHUNK = 1_000;
/** How long a read asked for with `getSoon` waits for others to share its `getMany`. */
const SOON_MS = 5;

/** One profile written or deleted (`null`), with what it was before. */
export interface ProfileWrite {
  id: string;
  before: Profile | null;
  after: Profile | null;
}

/** Sees every change before it is written; the write waits for it and does not happen if it rejects. */
export type ProfileRecorder = (changes: ProfileWrite[]) => Promise<void>;

interface Reading {
  promise: Promise<Profile | undefined>;
}

/** The reads `getSoon` gathers for one `getMany`. */
interface SoonBatch {
  readonly ids: string[];
  readonly readings: Reading[];
  readonly settle: Array<{ resolve: (p: Profile | undefined) => void; reject: (err: unknown) => void }>;
  readonly timer: NodeJS.Timeout;
}
/** A cached entry is the answer `peek` gives for it, made when it is cached rather than on every peek. */
type Cached = Extract<ProfilePeek, { hit: true }>;

// A cached miss: the device has no profile. Kept so that unknown devices do not cost a disk read per event.
const MISSING: Cached = Object.freeze({ hit: true, profile: undefined });
const NOT_CACHED: ProfilePeek = Object.freeze({ hit: false });

function cached(profile: Profile | undefined): Cached {
  return profile === undefined ? MISSING : Object.freeze({ hit: true, profile });
}

/**
 * Device profiles in LevelDB behind a bounded LRU cache (hits and misses alike). Profiles handed out
 * are the cached objects themselves: callers read them and never mutate them.
 */
export class ProfileStore {
  readonly #root: RootLevel;
  readonly #level: Sublevel;
  readonly #cache: LruCache<string, Cached>;
  // Reads in flight, so that concurrent lookups of one id share a disk read, and so that a write can
  // tell a read that started before it not to cache what it read.
  readonly #reading = new Map<string, Reading>();
  #soon: SoonBatch | undefined;
  #recorder: ProfileRecorder | undefined;

  constructor(root: RootLevel, level: Sublevel, cacheEntries: number = DEFAULT_PROFILE_CACHE_ENTRIES) {
    this.#root = root;
    this.#level = level;
    this.#cache = new LruCache(cacheEntries);
  }

  /** Every later change is handed to `recorder` before it is written (the gateway's journal). */
  recordChangesWith(recorder: ProfileRecorder): void {
    this.#recorder = recorder;
  }

  /** Hands `changes` (ids with their new value, `null` for a delete) to the recorder, with what they were before. */
  async #record(changes: ReadonlyArray<{ id: string; after: Profile | null }>): Promise<void> {
    const recorder = this.#recorder;
    if (recorder === undefined || changes.length === 0) return;
    const ids = changes.map((c) => c.id);
    const before = await storeIo('reading profiles before a change', () => this.#level.getMany(ids));
    await recorder(
      changes.map((c, i) => {
        const was: unknown = before[i];
        return { id: c.id, before: isProfile(was) ? was : null, after: c.after };
      }),
    );
  }

  /** Entries in the cache (profiles and known misses). */
  get cachedEntries(): number {
    return this.#cache.size;
  }

  /** A synchronous cache lookup: the hot path stays synchronous on a hit, and goes to `get` otherwise. */
  peek(id: string): ProfilePeek {
    return this.#cache.get(id) ?? NOT_CACHED;
  }

  async get(id: string): Promise<Profile | undefined> {
    const hit = this.#cache.get(id);
    if (hit !== undefined) return hit.profile;
    const pending = this.#reading.get(id);
    if (pending !== undefined) return pending.promise;
    const reading = {} as Reading;
    reading.promise = this.#read(id, reading);
    this.#reading.set(id, reading);
    return reading.promise;
  }

  /**
   * As `get`, for an input that can wait a few milliseconds (a device's connection): the read waits up to `SOON_MS`
   * for others to share one LevelDB `getMany`, so that a reconnect storm costs a trip to LevelDB's thread per few
   * milliseconds rather than one per device.
   */
  getSoon(id: string): Promise<Profile | undefined> {
    const hit = this.#cache.get(id);
    if (hit !== undefined) return Promise.resolve(hit.profile);
    const pending = this.#reading.get(id);
    if (pending !== undefined) return pending.promise;
    const batch = this.#soon ?? this.#startSoon();
    const reading = {} as Reading;
    reading.promise = new Promise((resolve, reject) => batch.settle.push({ resolve, reject }));
    batch.ids.push(id);
    batch.readings.push(reading);
    this.#reading.set(id, reading);
    if (batch.ids.length >= PREFETCH_CHUNK) {
      clearTimeout(batch.timer);
      this.#readSoon();
    }
    return reading.promise;
  }

  #startSoon(): SoonBatch {
    const batch: SoonBatch = {
      ids: [],
      readings: [],
      settle: [],
      timer: setTimeout(this.#readSoon, SOON_MS),
    };
    this.#soon = batch;
    return batch;
  }

  /** Made once, not per batch. */
  readonly #readSoon = (): void => {
    const batch = this.#soon;
    this.#soon = undefined;
    if (batch === undefined) return;
    const { ids, readings, settle } = batch;
    storeIo(`reading ${ids.length} profiles`, () => this.#level.getMany(ids)).then(
      (values) => {
        for (let i = 0; i < ids.length; i++) {
          const id = ids[i] as string;
          const value: unknown = values[i];
          const profile = isProfile(value) ? value : undefined;
          // A write to this id since the read was asked for took it out of #reading: what was read may be stale.
          if (this.#reading.get(id) === readings[i]) {
            this.#cache.set(id, cached(profile));
            this.#reading.delete(id);
          }
          settle[i]?.resolve(profile);
        }
      },
      (err: unknown) => {
        for (let i = 0; i < ids.length; i++) {
          const id = ids[i] as string;
          if (this.#reading.get(id) === readings[i]) this.#reading.delete(id);
          settle[i]?.reject(err);
        }
      },
    );
  };

  async #read(id: string, reading: Reading): Promise<Profile | undefined> {
    try {
      const value = await storeIo(`reading profile ${id}`, () => this.#level.get(id));
      const profile = isProfile(value) ? value : undefined;
      // A write to this id since the read started took it out of #reading: what was read may be stale.
      if (this.#reading.get(id) === reading) this.#cache.set(id, cached(profile));
      return profile;
    } finally {
      if (this.#reading.get(id) === reading) this.#reading.delete(id);
    }
  }

  /**
   * Reads the profiles of `ids` that are neither cached nor being read into the cache, `PREFETCH_CHUNK` to one
   * LevelDB `getMany` (one trip to LevelDB's thread, where `get` makes one per id): recovery reads the profiles
   * of all the devices the journal tail names before it replays it. Returns how many it read.
   */
  async prefetch(ids: Iterable<string>): Promise<number> {
    const wanted = [...new Set(ids)].filter((id) => !this.#cache.has(id) && !this.#reading.has(id));
    for (let from = 0; from < wanted.length; from += PREFETCH_CHUNK) {
      await this.#readMany(wanted.slice(from, from + PREFETCH_CHUNK));
    }
    return wanted.length;
  }

  async #readMany(ids: string[]): Promise<void> {
    const values = storeIo(`reading ${ids.length} profiles`, () => this.#level.getMany(ids));
    const readings = ids.map((id, i) => {
      const reading = {} as Reading;
      reading.promise = values.then((v) => (isProfile(v[i]) ? v[i] : undefined));
      // Whoever joins the read sees its failure; the prefetch itself reports it once.
      reading.promise.catch(() => undefined);
      this.#reading.set(id, reading);
      return reading;
    });
    try {
      const read = await values;
      ids.forEach((id, i) => {
        // A write to this id since the read started took it out of #reading: what was read may be stale.
        if (this.#reading.get(id) !== readings[i]) return;
        const value: unknown = read[i];
        this.#cache.set(id, cached(isProfile(value) ? value : undefined));
        this.#reading.delete(id);
      });
    } finally {
      ids.forEach((id, i) => {
        if (this.#reading.get(id) === readings[i]) this.#reading.delete(id);
      });
    }
  }

  async put(id: string, profile: Profile): Promise<void> {
    await this.#record([{ id, after: profile }]);
    await storeIo(`writing profile ${id}`, () => this.#level.put(id, profile));
    this.#reading.delete(id);
    this.#cache.set(id, cached(profile));
  }

  /**
   * Writes many profiles in one LevelDB batch. Only ids already cached are refreshed, so that a bulk
   * import does not flush the profiles of the devices that are actually talking.
   */
  async putMany(batch: readonly ProfileEntry[]): Promise<void> {
    if (batch.length === 0) return;
    await this.#record(batch.map(({ id, profile }) => ({ id, after: profile })));
    const level = this.#level;
    const ops = batch.map(({ id, profile }) => ({
      type: 'put' as const,
      sublevel: level,
      key: id,
      value: profile,
    }));
    await storeIo(`writing ${batch.length} profiles`, () => this.#root.batch(ops));
    for (const { id, profile } of batch) {
      this.#reading.delete(id);
      if (this.#cache.has(id)) this.#cache.set(id, cached(profile));
    }
  }

  async delete(id: string): Promise<void> {
    await this.#record([{ id, after: null }]);
    await storeIo(`deleting profile ${id}`, () => this.#level.del(id));
    this.#reading.delete(id);
    this.#cache.set(id, MISSING);
  }

  /**
   * Upserts and deletes in one LevelDB batch together with `also` (writes to other sublevels that must
   * land with them, such as a sequence number): all of it is written, or none. Cached ids follow.
   */
  async applyBatch(
    changes: { upserts: readonly ProfileEntry[]; deletes: readonly string[] },
    also: ReadonlyArray<{ sublevel: Sublevel; key: string; value: unknown }> = [],
  ): Promise<void> {
    const level = this.#level;
    const ops = [
      ...changes.upserts.map(({ id, profile }) => ({
        type: 'put' as const,
        sublevel: level,
        key: id,
        value: profile,
      })),
      ...also.map(({ sublevel, key, value }) => ({ type: 'put' as const, sublevel, key, value })),
    ];
    const dels = changes.deletes.map((id) => ({ type: 'del' as const, sublevel: level, key: id }));
    if (ops.length + dels.length === 0) return;
    await this.#record([
      ...changes.upserts.map(({ id, profile }) => ({ id, after: profile })),
      ...changes.deletes.map((id) => ({ id, after: null })),
    ]);
    await storeIo(`writing a batch of ${ops.length + dels.length} changes`, () =>
      this.#root.batch([...ops, ...dels]),
    );
    for (const { id, profile } of changes.upserts) {
      this.#reading.delete(id);
      if (this.#cache.has(id)) this.#cache.set(id, cached(profile));
    }
    for (const id of changes.deletes) {
      this.#reading.delete(id);
      if (this.#cache.has(id)) this.#cache.set(id, MISSING);
    }
  }

  /**
   * The number of stored profiles (those whose id `where` keeps, when given), counted by a scan of the keys
   * (about a second per million).
   */
  async count(where?: (id: string) => boolean): Promise<number> {
    return storeIo('counting profiles', async () => {
      const keys = this.#level.keys();
      try {
        let total = 0;
        for (;;) {
          const chunk = await keys.nextv(10_000);
          if (chunk.length === 0) return total;
          total += where ? chunk.filter(where).length : chunk.length;
        }
      } finally {
        await keys.close();
      }
    });
  }
}

function isProfile(value: unknown): value is Profile {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
