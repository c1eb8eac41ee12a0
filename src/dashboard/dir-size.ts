import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';

export const DEFAULT_DIR_SIZE_EVERY_MS = 10_000;

/** Total bytes of the regular files under `dir`; files that vanish while it looks (compaction) count 0. */
export async function dirBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  let total = 0;
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    try {
      total += (await stat(join(entry.parentPath, entry.name))).size;
    } catch {
      // LevelDB deletes old tables and logs as it compacts; a file gone since readdir weighs nothing.
    }
  }
  return total;
}

/**
 * Samples the size of a directory every `everyMs`, not on each scrape: walking LevelDB's files costs
 * a few syscalls per table, and a Prometheus scraping every second should not pay that each time.
 */
export class DirSizeSampler {
  private handle: NodeJS.Timeout | undefined;
  private running = false;
  private failedOnce = false;
  private latest: number | undefined;

  constructor(
    private readonly dir: string,
    private readonly onSample: (bytes: number) => void,
    private readonly logger: Logger,
    private readonly everyMs: number = DEFAULT_DIR_SIZE_EVERY_MS,
  ) {}

  /** The latest sample, once there is one. */
  get bytes(): number | undefined {
    return this.latest;
  }

  /** Takes a first sample now, then one every `everyMs`. */
  start(): void {
    if (this.handle) return;
    this.sampleNow();
    this.handle = setInterval(() => this.sampleNow(), this.everyMs);
    this.handle.unref();
  }

  stop(): void {
    if (this.handle) clearInterval(this.handle);
    this.handle = undefined;
  }

  private sampleNow(): void {
    // A slow disk must not stack walks on top of each other.
    if (this.running) return;
    this.running = true;
    dirBytes(this.dir).then(
      (bytes) => {
        this.running = false;
        this.latest = bytes;
        this.failedOnce = false;
        this.onSample(bytes);
      },
      (err: unknown) => {
        this.running = false;
        // Logged once per run of failures, not every 10 s.
        if (!this.failedOnce) this.logger.warn({ err, dir: this.dir }, 'data directory size not sampled');
        this.failedOnce = true;
      },
    );
  }
}
