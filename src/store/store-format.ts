import { DATA_FORMATS, DataFormatError, releaseVersion } from '../shared/index.js';
import type { Sublevel } from './level-types.js';

/** Key, in the `state` area, of the database's format: one number for every value in it. */
export const STORE_FORMAT_KEY = 'format';

/** What the format key holds: the format, and the release that last opened the database. */
export interface StoreFormat {
  format: number;
  writtenBy: string;
}

/**
 * Steps from each older format to the next, run in order when a database of that format is opened: the entry at
 * index `n - 1` takes format `n` to `n + 1`. None yet: format 1 is every database written so far.
 */
const MIGRATIONS: ReadonlyArray<(state: Sublevel) => Promise<void>> = [];

/**
 * Checks the database's format as it is opened: a newer one than this build reads stops start-up (DataFormatError);
 * an older one is migrated; then the key names this format and release. A database without the key (written before
 * formats were numbered) is format 1. `dir` is named in the error.
 */
export async function checkStoreFormat(state: Sublevel, dir: string, write: boolean): Promise<StoreFormat> {
  const stored = parseFormat(await state.get(STORE_FORMAT_KEY));
  const found = stored?.format ?? 1;
  if (found > DATA_FORMATS.store) throw new DataFormatError('store', found, dir, stored?.writtenBy);
  const current: StoreFormat = { format: DATA_FORMATS.store, writtenBy: releaseVersion() };
  if (!write) return stored ?? { format: 1, writtenBy: 'unknown' };
  for (let f = found; f < DATA_FORMATS.store; f++) await MIGRATIONS[f - 1]?.(state);
  if (stored?.format !== current.format || stored.writtenBy !== current.writtenBy) {
    await state.put(STORE_FORMAT_KEY, current);
  }
  return current;
}

function parseFormat(value: unknown): StoreFormat | undefined {
  if (value === undefined || value === null || typeof value !== 'object') return undefined;
  const { format, writtenBy } = value as Partial<StoreFormat>;
  if (typeof format !== 'number') return undefined;
  return { format, writtenBy: typeof writtenBy === 'string' ? writtenBy : 'unknown' };
}
