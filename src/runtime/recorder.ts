import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from 'pino';
import type { Event } from '../shared/index.js';

/** Appends every ingested event to an NDJSON file that `vigil replay` reads. */
export class Recorder {
  private readonly out: WriteStream;
  private failed = false;

  constructor(
    readonly file: string,
    private readonly logger: Logger,
  ) {
    this.out = createWriteStream(file, { flags: 'a' });
    this.out.on('error', (err) => {
      if (!this.failed) this.logger.error({ err, file }, 'recording stopped: cannot write the record file');
      this.failed = true;
    });
  }

  record(ev: Event): void {
    if (!this.failed) this.out.write(JSON.stringify(ev) + '\n');
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.out.end(resolve));
  }
}
