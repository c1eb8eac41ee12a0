import type { Transferable } from 'node:worker_threads';

/**
 * One end of a channel between two threads; the other end is another `Crossing` on the paired port. Each end
 * sends records (byte strings: a journal record, a command) and receives the other end's. Records are copied
 * into a batch buffer and cross in one message per turn of the event loop, transferred, not cloned: one
 * structured clone of a small envelope per batch, none per record. A batch that filled a good part of its buffer
 * crosses in that buffer, which the receiver hands back once it has read it, and the sender writes its next
 * batches into those. A smaller one (most turns: a few records) crosses as a copy of its bytes, which the receiver
 * keeps: one small allocation rather than a second message, which would wake the sender's thread again.
 */
export interface CrossingPort {
  postMessage(message: unknown, transfer: Transferable[]): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

/** What a received record is handed over as: its bytes are `batch[start..end)`, valid during the call only. */
export type OnRecord = (batch: Uint8Array, start: number, end: number) => void;

export interface CrossingOptions {
  /** Size of a batch buffer; a record larger than this gets a buffer of its own. Default 64 KiB. */
  batchBytes?: number;
  /** Buffers handed back and kept for reuse, at most. Default 8. */
  keepBuffers?: number;
  /**
   * A batch of fewer bytes than this crosses as a copy, not handed back; one of this many bytes or more in its
   * buffer. Default a quarter of `batchBytes`.
   */
  copyBelow?: number;
}

interface BatchMessage {
  kind: 'batch';
  buffer: ArrayBuffer;
  bytes: number;
  records: number;
  copy?: true;
}
interface ReturnMessage {
  kind: 'return';
  buffer: ArrayBuffer;
}

const LENGTH_BYTES = 4;
const DEFAULT_BATCH_BYTES = 64 * 1024;
const DEFAULT_KEEP_BUFFERS = 8;

export class Crossing {
  private readonly batchBytes: number;
  private readonly keepBuffers: number;
  private readonly copyBelow: number;
  private readonly spare: ArrayBuffer[] = [];
  private batch: Uint8Array;
  private used = 0;
  private count = 0;
  private scheduled = false;
  private closed = false;
  private onRecord: OnRecord | undefined;
  private readonly listener = (message: unknown): void =>
    this.handle(message as BatchMessage | ReturnMessage);
  /**
   * Batches and records sent, buffers allocated (not reused), and batches that crossed as a copy, since start.
   */
  readonly stats = { batches: 0, records: 0, allocated: 0, copied: 0 };

  constructor(
    private readonly port: CrossingPort,
    opts: CrossingOptions = {},
  ) {
    this.batchBytes = opts.batchBytes ?? DEFAULT_BATCH_BYTES;
    this.keepBuffers = opts.keepBuffers ?? DEFAULT_KEEP_BUFFERS;
    this.copyBelow = opts.copyBelow ?? Math.floor(this.batchBytes / 4);
    this.batch = this.freshBuffer(this.batchBytes);
    port.on('message', this.listener);
  }

  /** Receives the other end's records, in the order it sent them. */
  onRecords(onRecord: OnRecord): void {
    this.onRecord = onRecord;
  }

  private handle(arg: BatchMessage | ReturnMessage | { kind?: undefined }): void {
    if (arg.kind === 'return') {
      if (this.spare.length < this.keepBuffers && arg.buffer.byteLength >= this.batchBytes)
        this.spare.push(arg.buffer);
      return;
    }
    // Other messages on the same port are someone else's.
    if (arg.kind !== 'batch') return;
    const batch = new Uint8Array(arg.buffer, 0, arg.bytes);
    let offset = 0;
    for (let i = 0; i < arg.records; i++) {
      const length = readLength(batch, offset);
      const start = offset + LENGTH_BYTES;
      offset = start + length;
      this.onRecord?.(batch, start, offset);
    }
    // Read through: the sender may write its next batch into it (a copy is ours, and simply dropped).
    if (arg.copy !== true && !this.closed)
      this.port.postMessage({ kind: 'return', buffer: arg.buffer }, [arg.buffer]);
  }

  /** Queues `record` for the other end; it crosses with the others of this turn. */
  send(record: Uint8Array): void {
    const need = LENGTH_BYTES + record.length;
    if (this.used + need > this.batch.length) {
      this.flush();
      if (need > this.batch.length) this.batch = this.freshBuffer(need);
    }
    writeLength(this.batch, this.used, record.length);
    this.batch.set(record, this.used + LENGTH_BYTES);
    this.used += need;
    this.count++;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  /** Sends what is queued now rather than at the end of the turn. */
  flush(): void {
    if (this.count === 0 || this.closed) return;
    if (this.used < this.copyBelow) return this.flushCopy();
    const buffer = this.batch.buffer as ArrayBuffer;
    const message: BatchMessage = { kind: 'batch', buffer, bytes: this.used, records: this.count };
    this.port.postMessage(message, [buffer]);
    this.stats.batches++;
    this.stats.records += this.count;
    this.used = 0;
    this.count = 0;
    this.batch = new Uint8Array(this.spare.pop() ?? this.freshBuffer(this.batchBytes).buffer);
  }

  /** Sends the queued bytes as a copy the receiver keeps, and writes the next batch into the same buffer. */
  private flushCopy(): void {
    const buffer = this.batch.buffer.slice(0, this.used) as ArrayBuffer;
    const message: BatchMessage = {
      kind: 'batch',
      buffer,
      bytes: this.used,
      records: this.count,
      copy: true,
    };
    this.port.postMessage(message, [buffer]);
    this.stats.batches++;
    this.stats.copied++;
    this.stats.records += this.count;
    this.used = 0;
    this.count = 0;
  }

  /** Sends what is queued and stops listening. */
  close(): void {
    this.flush();
    this.closed = true;
    this.port.off('message', this.listener);
  }

  private freshBuffer(bytes: number): Uint8Array {
    this.stats.allocated++;
    return new Uint8Array(new ArrayBuffer(Math.max(bytes, this.batchBytes)));
  }
}

function writeLength(buf: Uint8Array, at: number, n: number): void {
  buf[at] = n & 0xff;
  buf[at + 1] = (n >>> 8) & 0xff;
  buf[at + 2] = (n >>> 16) & 0xff;
  buf[at + 3] = (n >>> 24) & 0xff;
}

function readLength(buf: Uint8Array, at: number): number {
  return (
    ((buf[at] as number) |
      ((buf[at + 1] as number) << 8) |
      ((buf[at + 2] as number) << 16) |
      ((buf[at + 3] as number) << 24)) >>>
    0
  );
}
