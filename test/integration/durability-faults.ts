import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { fileJournalStorage, type JournalFile, type JournalStorage } from '../../src/runtime/index.js';

/** A logger whose lines are kept, parsed, for assertions on what the gateway says. */
export function captureLogs(level = 'info'): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

/** The write operations of the journal's storage that a fault can be injected into. */
export type StorageOp = 'write' | 'fdatasync' | 'create' | 'truncate' | 'replace' | 'fsync of the directory';

/** The filesystem journal storage, with a switch that makes every write fail as a full disk would. */
export interface FaultyStorage extends JournalStorage {
  /**
   * From now on writes, syncs and file creations fail with `code` (ENOSPC: the disk is full); with `only`,
   * just those operations (`replace`: a checkpoint; `create`: a new segment, at a rotation or a rewrite).
   */
  fail(code?: string, only?: readonly StorageOp[]): void;
  heal(): void;
  /** Write operations refused so far. */
  readonly refused: number;
}

export function faultyStorage(base: JournalStorage = fileJournalStorage()): FaultyStorage {
  let failing: string | undefined;
  let failingOps: readonly StorageOp[] | undefined;
  let refused = 0;
  const check = (what: StorageOp): void => {
    if (failing === undefined || (failingOps !== undefined && !failingOps.includes(what))) return;
    refused++;
    throw Object.assign(new Error(`${failing}: injected fault on ${what}`), { code: failing });
  };
  const wrap = (file: JournalFile): JournalFile => ({
    append: async (chunks) => {
      check('write');
      await file.append(chunks);
    },
    write: (buf, start, end, done) => {
      try {
        check('write');
      } catch (err) {
        process.nextTick(done, err);
        return;
      }
      if (file.write === undefined) file.append([buf.subarray(start, end)]).then(() => done(null), done);
      else file.write(buf, start, end, done);
    },
    datasync: async () => {
      check('fdatasync');
      await file.datasync();
    },
    close: () => file.close(),
  });
  return {
    ensureDir: (dir) => base.ensureDir(dir),
    list: (dir) => base.list(dir),
    read: (path) => base.read(path),
    stat: (path) => base.stat(path),
    create: async (path) => {
      check('create');
      return wrap(await base.create(path));
    },
    truncate: async (path, bytes) => {
      check('truncate');
      await base.truncate(path, bytes);
    },
    remove: (path) => base.remove(path),
    replace: async (path, data) => {
      check('replace');
      await base.replace(path, data);
    },
    syncDir: async (dir) => {
      check('fsync of the directory');
      await base.syncDir(dir);
    },
    fail: (code = 'ENOSPC', only) => {
      failing = code;
      failingOps = only;
    },
    heal: () => {
      failing = undefined;
    },
    get refused() {
      return refused;
    },
  };
}
