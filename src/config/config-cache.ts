import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { crc32 } from 'node:zlib';
import { privateDirProblem } from '../shared/cache-folder.js';
import type { Config } from './schema.js';

/**
 * The configuration an earlier start validated, for a start given the same input: the config file as read, the
 * `VIGIL_*` variables and the flags, merged (`loadConfig`'s raw input), and the same build. Validation is a pure
 * function of that input, so the configuration kept is the one validating would give; zod's schema is then not even
 * built, which is most of what reading the configuration costs a start.
 */
export interface ConfigCache {
  /** The configuration kept for exactly this input, or undefined (another input, none kept, or unreadable). */
  read(raw: unknown): Config | undefined;
  /** Keeps `config`, validated from `raw`, for the next start. Best effort: a start without it only validates. */
  write(raw: unknown, config: Config): void;
}

/** The file's name in its folder. */
export const CONFIG_CACHE_FILE = 'config.bin';
/** `VGCF`: the file's first four bytes. */
const MAGIC = 0x46434756;

/**
 * The cache in `dir/config.bin`, for the build `build` (its bundle's hash: another build may validate otherwise). It
 * holds one entry, the last input's: `VGCF`, the CRC-32 of the rest, then the key (SHA-256 of the build and the
 * input, structured-cloned) and the configuration, serialized by V8. Read only from a folder and a file that are this
 * user's and that no one else can write, as the executable's other caches are (what it holds becomes the
 * configuration); written only when the input changed, through a rename, not synced: a file a power cut left short
 * fails its CRC, and the next start validates again.
 */
export function configCacheIn(dir: string, build: string): ConfigCache {
  const file = join(dir, CONFIG_CACHE_FILE);
  const keyOf = (raw: unknown): string =>
    createHash('sha256').update(build).update('\0').update(serialize(raw)).digest('hex');
  let keptKey: string | undefined;
  return {
    read(raw) {
      try {
        if (privateDirProblem(dir) !== undefined) return undefined;
        const st = lstatSync(file, { throwIfNoEntry: false });
        if (st === undefined || !st.isFile() || (st.mode & 0o022) !== 0) return undefined;
        if (process.getuid !== undefined && st.uid !== process.getuid()) return undefined;
        const buf = readFileSync(file);
        if (buf.length < 8 || buf.readUInt32LE(0) !== MAGIC) return undefined;
        const body = buf.subarray(8);
        if (crc32(body) !== buf.readUInt32LE(4)) return undefined;
        const entry = deserialize(body) as { key?: unknown; config?: unknown };
        if (typeof entry.key !== 'string') return undefined;
        keptKey = entry.key;
        return entry.key === keyOf(raw) ? (entry.config as Config) : undefined;
      } catch {
        return undefined;
      }
    },
    write(raw, config) {
      const key = keyOf(raw);
      if (key === keptKey) return;
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        if (privateDirProblem(dir) !== undefined) return;
        const body = serialize({ key, config });
        const head = Buffer.alloc(8);
        head.writeUInt32LE(MAGIC, 0);
        head.writeUInt32LE(crc32(body), 4);
        const fd = openSync(tmp, 'w', 0o600);
        try {
          writeSync(fd, head);
          writeSync(fd, body);
        } finally {
          closeSync(fd);
        }
        renameSync(tmp, file);
        keptKey = key;
      } catch {
        rmSync(tmp, { force: true });
      }
    },
  };
}
