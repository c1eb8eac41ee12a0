import { createHash } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
  openSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { getAsset, getRawAsset } from 'node:sea';
import { cacheDirCandidates, privateDirProblem } from './cache-dir.js';
import { dataFromConfig } from './config-data.js';
import { MANIFEST_ASSET, type EmbeddedFile, type Manifest } from './manifest.js';

let manifest: Manifest | undefined;

/** The manifest the build embedded. */
export function embeddedManifest(): Manifest {
  manifest ??= JSON.parse(getAsset(MANIFEST_ASSET, 'utf8')) as Manifest;
  return manifest;
}

let candidates: string[] | undefined;

/** The cache folders to try, best first, for this invocation (see cache-dir.ts). */
export function cacheDirs(): readonly string[] {
  candidates ??= cacheDirCandidates({
    args: process.argv.slice(2),
    env: process.env,
    cwd: process.cwd(),
    uid: process.getuid?.() ?? 0,
    configData: dataFromConfig,
  });
  return candidates;
}

/**
 * Creates `dir` for this user only, or checks that an existing one is ours and not writable by others:
 * what is in it gets loaded into the process.
 */
export function ensurePrivateDir(dir: string): void {
  // Only the cache folder itself is private; a data directory created on the way keeps the usual mode.
  mkdirSync(dirname(dir), { recursive: true });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const problem = privateDirProblem(dir);
  if (problem !== undefined) throw new Error(problem);
}

/**
 * Writes the embedded `file` to `dir/file.path` unless an identical copy is already there, and
 * returns its path. The copy is checked by size and SHA-256, and replaced through a rename so that
 * a concurrent start or a crash never leaves a half-written file under the final name. It is not
 * synced: a copy that a power cut left short or empty fails this check at the next start, which
 * writes it again, and a first run does not wait for the disk once per file.
 */
export function materialize(dir: string, file: EmbeddedFile): string {
  const path = join(dir, file.path);
  if (isIntact(path, file)) return path;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, new Uint8Array(getRawAsset(file.asset)));
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  if (!isIntact(path, file)) throw new Error(`${path} does not match the embedded copy after writing it`);
  return path;
}

function isIntact(path: string, file: EmbeddedFile): boolean {
  try {
    if (statSync(path).size !== file.bytes) return false;
    return sha256(readFileSync(path)) === file.sha256;
  } catch {
    return false;
  }
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
