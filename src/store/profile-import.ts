import { performance } from 'node:perf_hooks';
import type { Profile } from '../shared/index.js';
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

const DEFAULT_IMPORT_BATCH_SIZE = 1_000;
const DEFAULT_MAX_ERRORS = 100;
const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;

type ParsedLine = { ok: true; entry: ProfileEntry } | { ok: false; message: string } | { ok: 'blank' };

/** Why a profile cannot be imported as it is (e.g. the credentials' check), or undefined. */
export type ProfileCheck = (id: string, profile: Profile) => string | undefined;

/** What the input's bytes come as: a line (without its newline), a line too long to keep, or a chunk's end. */
type Piece = { line: Buffer } | { overlong: true } | { chunkBytes: number };

/**
 * Imports NDJSON profiles (`{"id": "...", ...fields}` per line). Bad lines are reported with their
 * numbers and skipped; the good ones are written in batches. One batch is written while the next
 * is parsed.
 */
export async function importProfiles(
  store: { profiles: Pick<ProfileStore, 'putMany'>; checkProfile?: ProfileCheck },
  input: NodeJS.ReadableStream | AsyncIterable<unknown>,
  opts: ImportOptions = {},
): Promise<ImportSummary> {
  const startedAt = performance.now();
  const batchSize = positive(opts.batchSize ?? DEFAULT_IMPORT_BATCH_SIZE, 'batchSize');
  const maxErrors = opts.maxErrors ?? DEFAULT_MAX_ERRORS;
  const maxLineBytes = positive(opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, 'maxLineBytes');
  const errors: ImportLineError[] = [];
  let imported = 0;
  let rejected = 0;
  let bytesRead = 0;
  let lineNo = 0;
  let batch: ProfileEntry[] = [];
  let writing: Promise<void> = Promise.resolve();
  let writeFailure: { error: unknown } | undefined;

  const summary = (): ImportSummary => ({
    imported,
    rejected,
    errors,
    elapsedMs: performance.now() - startedAt,
  });
  const reject = (message: string): void => {
    rejected += 1;
    if (errors.length < maxErrors) errors.push({ line: lineNo, message });
  };
  const throwIfWriteFailed = (): void => {
    if (writeFailure !== undefined) throw writeFailure.error;
  };
  const flush = async (): Promise<void> => {
    await writing;
    throwIfWriteFailed();
    if (batch.length === 0) return;
    const toWrite = batch;
    batch = [];
    // Not awaited here, so that parsing goes on while LevelDB writes; the failure is kept for the next flush.
    writing = store.profiles.putMany(toWrite).then(
      () => {
        imported += toWrite.length;
      },
      (error: unknown) => {
        writeFailure = { error };
      },
    );
  };
  const take = (bytes: Buffer): void => {
    lineNo += 1;
    const parsed = parseLine(bytes.toString('utf8'), lineNo === 1, store.checkProfile);
    if (parsed.ok === true) batch.push(parsed.entry);
    else if (parsed.ok === false) reject(parsed.message);
  };

  try {
    for await (const piece of piecesOf(input, maxLineBytes)) {
      if ('chunkBytes' in piece) {
        bytesRead += piece.chunkBytes;
        opts.onProgress?.({ bytesRead, imported, rejected });
        continue;
      }
      if ('line' in piece) take(piece.line);
      else {
        lineNo += 1;
        reject(`line longer than ${maxLineBytes} bytes`);
      }
      if (batch.length >= batchSize) await flush();
    }
  } catch (err) {
    throwIfWriteFailed();
    // The lines read before the failure are kept, so that the summary says exactly what is imported.
    await flush();
    await writing;
    throwIfWriteFailed();
    const reason = err instanceof Error ? err.message : String(err);
    throw new ProfileImportError(`reading the profiles failed after line ${lineNo}: ${reason}`, summary(), {
      cause: err,
    });
  }
  await flush();
  await writing;
  throwIfWriteFailed();
  opts.onProgress?.({ bytesRead, imported, rejected });
  return summary();
}

/**
 * Splits the input into lines on newline bytes (a newline byte never occurs inside a multi-byte UTF-8
 * character); a line longer than `maxLineBytes` is not kept, only reported.
 */
async function* piecesOf(
  input: NodeJS.ReadableStream | AsyncIterable<unknown>,
  maxLineBytes: number,
): AsyncGenerator<Piece> {
  let carry: Buffer[] = [];
  let carryBytes = 0;
  let overlong = false;
  for await (const chunk of input) {
    const buf = toBuffer(chunk);
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(NEWLINE, start);
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
      if (overlong) {
        overlong = false;
        yield { overlong: true };
      } else if (carry.length > 0) {
        carry.push(buf.subarray(start, end));
        const line = Buffer.concat(carry);
        carry = [];
        carryBytes = 0;
        yield { line };
      } else {
        yield { line: buf.subarray(start, end) };
      }
      start = nl + 1;
    }
    yield { chunkBytes: buf.length };
  }
  if (overlong) yield { overlong: true };
  else if (carry.length > 0) yield { line: Buffer.concat(carry) };
}

function parseLine(text: string, first: boolean, check: ProfileCheck | undefined): ParsedLine {
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
  const problem = check?.(id, profile);
  if (problem !== undefined) return { ok: false, message: problem };
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
