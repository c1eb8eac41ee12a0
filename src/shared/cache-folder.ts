import { lstatSync } from 'node:fs';

/**
 * Name of the cache folder inside the data directory: the single executable keeps there what one start leaves for
 * the next (its native addons, the code V8 compiled, the configuration validated).
 */
export const DATA_CACHE_DIR = '.cache';

/**
 * Why `dir` must not be used for what gets loaded into the process (native addons, compiled code, a configuration),
 * or undefined when it is a directory of this user that no one else can write to.
 */
export function privateDirProblem(dir: string, uid = process.getuid?.()): string | undefined {
  const st = lstatSync(dir, { throwIfNoEntry: false });
  if (st === undefined) return `${dir} does not exist`;
  if (!st.isDirectory()) return `${dir} is not a directory`;
  if (uid !== undefined && st.uid !== uid) return `${dir} belongs to another user`;
  if ((st.mode & 0o022) !== 0) return `${dir} is writable by other users`;
  return undefined;
}
