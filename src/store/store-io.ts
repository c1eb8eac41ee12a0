import { StoreIoError, VigilError } from '../shared/index.js';

/** What to look at when LevelDB cannot read or write. */
export const DISK_HINT =
  'check that the data directory is writable, and that its disk has room and no I/O errors';

/** Runs one LevelDB operation and turns any failure into a StoreIoError that says what was attempted. */
export async function storeIo<T>(what: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    if (err instanceof VigilError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new StoreIoError(`${what} failed: ${reason}`, { cause: err, hint: DISK_HINT });
  }
}
