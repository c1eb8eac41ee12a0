import { execFileSync } from 'node:child_process';
import { closeSync, openSync, statfsSync, writeSync } from 'node:fs';
import { mkdtemp, rm, rmdir, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A small tmpfs of its own: a disk that really fills up. */
export interface Tmpfs {
  readonly path: string;
  /** Bytes the filesystem still gives to a writer. */
  freeBytes(): Promise<number>;
  /**
   * Writes a ballast file until the filesystem refuses (ENOSPC), leaving `leaveBytes` free (rounded to pages);
   * synchronous, so that it can run inside a LevelDB hook at the moment a write is about to happen.
   */
  fill(leaveBytes?: number): void;
  /** Deletes the ballast: room again. */
  drain(): Promise<void>;
  unmount(): Promise<void>;
}

const PAGE = 4096;

/**
 * Mounts a tmpfs of `sizeBytes` on a fresh directory under the OS temp dir; a string saying why not when
 * mounting is not permitted here (it needs root, or CAP_SYS_ADMIN).
 */
export async function mountTmpfs(sizeBytes: number): Promise<Tmpfs | string> {
  const path = await mkdtemp(join(tmpdir(), 'vigil-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', path], { stdio: 'pipe' });
  } catch (err) {
    await rmdir(path).catch(() => undefined);
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return `cannot mount a tmpfs here (it takes root or CAP_SYS_ADMIN): ${stderr || (err as Error).message}`;
  }
  const ballast = join(path, 'ballast');
  const free = async (): Promise<number> => {
    const fs = await statfs(path);
    return fs.bavail * fs.bsize;
  };
  let mounted = true;
  return {
    path,
    freeBytes: free,
    fill(leaveBytes = 0) {
      const fd = openSync(ballast, 'a');
      try {
        const chunk = Buffer.alloc(64 * PAGE, 0x5a);
        const small = Buffer.alloc(PAGE, 0x5a);
        for (;;) {
          const fsNow = statfsSyncFree(path);
          if (fsNow <= leaveBytes) break;
          const rest = fsNow - leaveBytes;
          writeSync(fd, rest >= chunk.length ? chunk : small.subarray(0, Math.min(PAGE, rest)));
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        closeSync(fd);
      }
    },
    drain: () => rm(ballast, { force: true }),
    async unmount() {
      if (!mounted) return;
      mounted = false;
      execFileSync('umount', [path], { stdio: 'pipe' });
      await rmdir(path);
    },
  };
}

function statfsSyncFree(path: string): number {
  const fs = statfsSync(path);
  return fs.bavail * fs.bsize;
}
