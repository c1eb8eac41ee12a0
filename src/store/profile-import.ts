import { performance } from 'node:perf_hooks';
import type { Profile } from '../shared/index.js';
import { importedCredentialProblem } from './credentials.js';
import { ProfileImportError } from './errors.js';
import type { ImportLineError, ImportProgress, ImportSummary } from './import-summary.js';
import type { ProfileEntry, ProfileStore } from './profile-store.js';

export interface ImportOptions {
  /** Profiles per LevelDB batch; default 1,000 (measured: larger batches are no faster and take more memory). */
  batchSize?: number;
  /** Called as the input is read, with the bytes read so far. */
  onProgress?: (progress: ImportProgress) => void;
  /** Rejected lines listed in the summary; all are counted. Default 100. */
  maxErrors?: number;
  /** A longer line is rejected without being parsed, so one runaway line cannot exhaust memory. Default 1 MiB. */
  maxLineBytes?: number;
}

export const DEFAULT_IMPORT_BATCH_SIZE = 1_000;
const DEFAULT_MAX_ERRORS = 100;
const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;

type ParsedLine = { ok: true; entry: ProfileEntry } | { ok: false; message: string } | { ok: 'blank' };

/**
 * Imports NDJSON profiles (`{"id": "...", ...fields}` per line). Bad lines are reported with their
 * numbers and skipped; the good ones are written in batches. One batch is written while the next
 * is parsed.
 */
export async function importProfiles(
  store: { profiles: Pick<ProfileStore, 'putMany'> },
  input: NodeJS.ReadableStream | AsyncIterable<unknown>,
  opts: ImportOptions = {},
): Promise<ImportSummary> {
  const startedAt = performance.now();
  const batchSize = positive(opts.batchSize ?? DEFAULT_IMPORT_BATCH_SIZE, 'batchSize');
  const maxErrors = opts.maxErrors ?? DEFAULT_MAX_ERRORS;
  const maxLineBytes = positive(opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, 'maxLineBytes');
  const writer = new BatchWriter(store.profiles);
  const errors: ImportLineError[] = [];
  let rejected = 0;
  let lineNo = 0;
  let batch: ProfileEntry[] = [];

  const summary = (): ImportSummary => ({
    imported: writer.written,
    rejected,
    errors,
    elapsedMs: performance.now() - startedAt,
  });
  const take = (line: Buffer | undefined): void => {
    lineNo += 1;
    const parsed: ParsedLine =
      line === undefined
        ? { ok: false, message: `line longer than ${maxLineBytes} bytes` }
        : parseLine(line.toString('utf8'), lineNo === 1);
    if (parsed.ok === true) batch.push(parsed.entry);
    else if (parsed.ok === false) {
      rejected += 1;
      if (errors.length < maxErrors) errors.push({ line: lineNo, message: parsed.message });
    }
  };
  const flush = async (): Promise<void> => {
    await writer.write(batch);
    batch = [];
  };
  let bytesRead = 0;
  const progress = (): void => opts.onProgress?.({ bytesRead, imported: writer.written, rejected });

  try {
    const onChunk = (n: number): void => {
      bytesRead = n;
      progress();
    };
    for await (const line of readLines(input, maxLineBytes, onChunk)) {
      take(line);
      if (batch.length >= batchSize) await flush();
    }
  } catch (err) {
    // The lines read before the failure are kept, so that the summary says exactly what is imported.
    await flush();
    await writer.settled();
    const reason = err instanceof Error ? err.message : String(err);
    throw new ProfileImportError(`reading the profiles failed after line ${lineNo}: ${reason}`, summary(), {
      cause: err,
    });
  }
  await flush();
  await writer.settled();
  progress();
  return summary();
}

/**
 * Writes batches one at a time, each while the next is parsed. A failed write is thrown by the next
 * `write` or `settled`, so the caller stops at once and knows what was written before it.
 */
class BatchWriter {
  written = 0;
  private writing: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | undefined;

  constructor(private readonly profiles: Pick<ProfileStore, 'putMany'>) {}

  async write(batch: ProfileEntry[]): Promise<void> {
    await this.settled();
    if (batch.length === 0) return;
    // Not awaited here, so that parsing goes on while LevelDB writes.
    this.writing = this.profiles.putMany(batch).then(
      () => {
        this.written += batch.length;
      },
      (error: unknown) => {
        this.failure = { error };
      },
    );
  }

  async settled(): Promise<void> {
    await this.writing;
    if (this.failure !== undefined) throw this.failure.error;
  }
}

/**
 * The lines of `input`, without their newline; undefined for a line longer than `maxLineBytes`, which is
 * skipped without being held. Lines are split on bytes: a newline byte never occurs inside a
 * multi-byte UTF-8 character. `onChunk` hears the bytes read so far after each chunk's lines were taken.
 */
async function* readLines(
  input: NodeJS.ReadableStream | AsyncIterable<unknown>,
  maxLineBytes: number,
  onChunk: (bytesRead: number) => void,
): AsyncGenerator<Buffer | undefined> {
  let bytesRead = 0;
  let carry: Buffer[] = [];
  let carryBytes = 0;
  let overlong = false;
  for await (const chunk of input) {
    const buf = toBuffer(chunk);
    bytesRead += buf.length;
    let start = 0;
    for (let nl = buf.indexOf(NEWLINE); ; nl = buf.indexOf(NEWLINE, start)) {
      const end = nl === -1 ? buf.length : nl;
      if (!overlong && carryBytes + (end - start) > maxLineBytes) {
        overlong = true;
        carry = [];
        carryBytes = 0;
      }
      if (nl === -1) {
        if (!overlong && end > start) {
          carry.push(buf.subarray(start, end));
          carryBytes += end - start;
        }
        break;
      }
      if (overlong) yield undefined;
      else
        yield carry.length > 0
          ? Buffer.concat([...carry, buf.subarray(start, end)])
          : buf.subarray(start, end);
      overlong = false;
      carry = [];
      carryBytes = 0;
      start = nl + 1;
    }
    onChunk(bytesRead);
  }
  if (overlong) yield undefined;
  else if (carry.length > 0) yield Buffer.concat(carry);
}

function parseLine(text: string, first: boolean): ParsedLine {
  let line = text.endsWith('\r') ? text.slice(0, -1) : text;
  if (first && line.startsWith('\uFEFF')) line = line.slice(1);
  if (line.trim() === '') return { ok: 'blank' };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { ok: false, message: `invalid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, message: `expected a JSON object, got ${describeType(value)}` };
  }
  const profile = value as Profile;
  const id = profile['id'];
  if (id === undefined) return { ok: false, message: 'missing "id"' };
  if (typeof id !== 'string') return { ok: false, message: `"id" must be a string, got ${describeType(id)}` };
  if (id === '') return { ok: false, message: '"id" is empty' };
  const credentialProblem = importedCredentialProblem(id, profile);
  if (credentialProblem !== undefined) return { ok: false, message: credentialProblem };
  return { ok: true, entry: { id, profile } };
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`expected bytes or text from the input, got ${typeof chunk}`);
}

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
