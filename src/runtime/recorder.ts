import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from 'pino';
import type { Event } from '../shared/index.js';

export interface RecorderBound {
  /** Bytes not yet written past which an event is not recorded (counted by `onRefused`). */
  maxBytes: number;
  onRefused: () => void;
}

/** Without a bound given: 16 MiB waiting. */
const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Appends every ingested event to an NDJSON file that `vigil replay` reads. What waits to be written is bounded:
 * past half the bound the recorder is `congested` (publishers wait for `relieved`), past the bound an event is not
 * recorded and is counted.
 */
export class Recorder {
  private readonly out: WriteStream;
  private failed = false;
  private readonly bound: RecorderBound;
  private draining: Promise<void> | undefined;

  constructor(
    readonly file: string,
    private readonly logger: Logger,
    bound?: Partial<RecorderBound>,
  ) {
    this.bound = { maxBytes: DEFAULT_MAX_BYTES, onRefused: () => undefined, ...bound };
    // At most half the bound, so that a congested recorder has a write that asked to wait, and 'drain' comes.
    const highWaterMark = Math.max(1, Math.min(16 * 1024, Math.floor(this.bound.maxBytes / 2)));
    this.out = createWriteStream(file, { flags: 'a', highWaterMark });
    this.out.on('error', (err) => {
      if (!this.failed) this.logger.error({ err, file }, 'recording stopped: cannot write the record file');
      this.failed = true;
      this.out.emit('drain');
    });
  }

  /** Bytes waiting to be written. */
  get pendingBytes(): number {
    return this.out.writableLength;
  }

  /** Half the bound is waiting: publishers should wait for `relieved`. */
  get congested(): boolean {
    return !this.failed && this.out.writableLength >= this.bound.maxBytes / 2;
  }

  /** Settles once what waits to be written is below half the bound. */
  relieved(): Promise<void> {
    if (!this.congested) return Promise.resolve();
    this.draining ??= new Promise<void>((resolve) => this.out.once('drain', resolve)).finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  record(ev: Event): void {
    if (this.failed) return;
    if (this.out.writableLength >= this.bound.maxBytes) {
      this.bound.onRefused();
      return;
    }
    this.out.write(JSON.stringify(ev) + '\n');
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.out.end(resolve));
  }
}
