// The single executable's main script: compiles the command line's bundle (an asset) with V8's code cache
// and runs it. The code cache of a start that ran (`vigil run`, once started and recovered) holds every
// function the start compiled, where one made from the source holds only the bundle's top level: a start
// then compiles almost nothing. The build embeds the code cache of a start it ran (build/build-binary.ts),
// for a first run; each start keeps its own in the cache folder, next to the native addons, for the starts
// that follow (with the functions its configuration needed besides); a start from another build, or with
// other V8 flags, makes its own.
import {
  closeSync,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { getRawAsset } from 'node:sea';
import { Script } from 'node:vm';
import { crc32, zstdDecompressSync } from 'node:zlib';
import { STARTED_EVENT } from '../../src/cli/started-event.js';
import { APP_ASSET, APP_CODE_CACHE_ASSET, APP_LINE_OFFSET } from './app-script.js';
import { readAssetFromFile } from './blob-file.js';
import { cacheDirCandidates, privateDirProblem } from './cache-dir.js';
import { dataFromConfigScan } from './config-data-scan.js';

/** The bundle's SHA-256, set by the build: a code cache is kept per build. */
declare const VIGIL_APP_KEY: string;

type AppMain = (
  exports: unknown,
  require: NodeJS.Require,
  module: NodeJS.Module,
  filename: string,
  dirname: string,
) => unknown;

const CODE_CACHE_FILE = `code-${VIGIL_APP_KEY}.bin`;
/** Larger than any code cache of the bundle: a file past it is not this loader's. */
const MAX_CODE_CACHE_BYTES = 64 * 1024 * 1024;

function cacheDirs(): string[] {
  const uid = process.getuid?.() ?? 0;
  return cacheDirCandidates({
    args: process.argv.slice(2),
    env: process.env,
    cwd: process.cwd(),
    uid,
    configData: dataFromConfigScan,
  });
}

/**
 * The code cache an earlier start left in the first private cache folder that holds one, without its checksum
 * (a CRC-32 before it).
 */
function savedCodeCache(dirs: readonly string[]): Buffer | undefined {
  const uid = process.getuid?.();
  for (const dir of dirs) {
    try {
      if (privateDirProblem(dir, uid) !== undefined) continue;
      const st = lstatSync(join(dir, CODE_CACHE_FILE), { throwIfNoEntry: false });
      if (st === undefined || !st.isFile() || st.size > MAX_CODE_CACHE_BYTES) continue;
      if ((uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) continue;
      const file = readFileSync(join(dir, CODE_CACHE_FILE));
      // V8 checks the code cache's header, not every byte of it: a damaged file must not reach it.
      const data = file.subarray(4);
      if (file.length > 4 && file.readUInt32LE(0) === crc32(data)) return data;
    } catch {
      // Unreadable: the next folder, or the build's code cache.
    }
  }
  return undefined;
}

/**
 * An asset needed only while the bundle is compiled, read from the executable's file where it can be: so read,
 * its pages are not the process's (blob-file.ts).
 */
function assetOnce(key: string): Buffer {
  const mapped = getRawAsset(key);
  return readAssetFromFile(mapped) ?? Buffer.from(mapped);
}

/** The build's code cache; none in an executable for another architecture than the build's. */
function buildCodeCache(): Buffer | undefined {
  try {
    // Its length, then the code cache compressed (build-binary.ts). Decompressed into one buffer of that length
    // (and a byte, so that zlib does not make a second): no chunks joined, no larger buffer held.
    const packed = assetOnce(APP_CODE_CACHE_ASSET);
    const bytes = packed.readUInt32LE(0);
    if (bytes > MAX_CODE_CACHE_BYTES) return undefined;
    return zstdDecompressSync(packed.subarray(4), { chunkSize: bytes + 1 });
  } catch {
    return undefined;
  }
}

/**
 * Writes the script's code cache, as it is now, to the first cache folder that exists and is private
 * (the start has made its own by then), through a rename. Best effort: the next start is only slower
 * without it.
 */
function saveCodeCache(script: Script): void {
  const dir = cacheDirs().find((d) => privateDirProblem(d) === undefined);
  if (dir === undefined) return;
  const file = join(dir, CODE_CACHE_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const fd = openSync(tmp, 'w', 0o600);
    try {
      const data = script.createCachedData();
      const sum = Buffer.alloc(4);
      sum.writeUInt32LE(crc32(data));
      writeSync(fd, sum);
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}

function runApp(): void {
  const saved = savedCodeCache(cacheDirs());
  const cachedData = saved ?? buildCodeCache();
  // Latin-1, one byte a character, as the build wrote it (UTF-8 text this long would become a string of two).
  const source = assetOnce(APP_ASSET).toString('latin1');
  const script = new Script(source, {
    filename: process.execPath,
    lineOffset: APP_LINE_OFFSET,
    ...(cachedData === undefined ? {} : { cachedData }),
  });
  if (saved === undefined || script.cachedDataRejected === true) {
    process.once(STARTED_EVENT, () => saveCodeCache(script));
  }
  const main = script.runInThisContext() as AppMain;
  main(module.exports, require, module, __filename, __dirname);
}

runApp();
