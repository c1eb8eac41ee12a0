import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Encoder } from 'cbor-x';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { compileRuleFiles } from '../../src/rules/index.js';
import {
  Checkpoints,
  decodeRecord,
  DurableInputs,
  encodeRecord,
  fileJournalStorage,
  Journal,
  JournalReader,
  recordFormat,
  type CheckpointState,
} from '../../src/runtime/index.js';
import { DATA_FORMATS, DataFormatError, releaseVersion } from '../../src/shared/index.js';
import { openStore, STORE_FORMAT_KEY } from '../../src/store/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

/**
 * Every part of the data directory says its format. A build that meets a newer one than it reads stops, naming the
 * format (and the release, where the data says) and what to do, rather than skip or reset what it cannot read.
 */
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function dir(): Promise<string> {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  return tmp.path;
}

function append(journal: Journal, payload: Uint8Array, format?: number): Promise<void> {
  journal.append(payload, 'sync', format);
  return journal.recorded();
}

const heartbeat = encodeRecord({
  kind: 'event',
  event: { actor: 'd1', type: 'heartbeat', at: 1_000, data: {}, source: 'device' },
});

async function refusal(promise: Promise<unknown>): Promise<DataFormatError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataFormatError);
  return err as DataFormatError;
}

describe('journal records', () => {
  test('each frame carries its record format: 1 for inputs, 2 for a clock step; both are read back', async () => {
    const path = await dir();
    const journal = await Journal.open({ dir: path, logger: captureLogs().logger });
    const clock = { kind: 'clock', at: 2_000, offsetMs: 5_000, synced: true, stepMs: 5_000 } as const;
    await append(journal, heartbeat, recordFormat(decodeRecord(heartbeat) as never));
    await append(journal, encodeRecord(clock), recordFormat(clock));
    await journal.close();
    const formats: number[] = [];
    for (const name of (await readdir(path)).filter((n) => n.endsWith('.wal'))) {
      const buf = await readFile(join(path, name));
      for (let at = 0; at + 16 <= buf.length; at += 16 + buf.readUInt32LE(at))
        formats.push(buf.readUInt16LE(at + 14));
    }
    expect(formats).toEqual([1, 2]);
    const reader = await JournalReader.open(path, fileJournalStorage(), captureLogs().logger);
    const read = [];
    for await (const entry of reader?.read(0) ?? []) read.push(decodeRecord(entry.payload));
    expect(read[1]).toEqual(clock);
  });

  test('a record of a newer format is refused at open, with the format and what to do', async () => {
    const path = await dir();
    const journal = await Journal.open({ dir: path, logger: captureLogs().logger });
    await append(journal, heartbeat);
    await append(journal, heartbeat, DATA_FORMATS.journal + 1);
    await journal.close();
    const files = await readdir(path);
    const err = await refusal(Journal.open({ dir: path, logger: captureLogs().logger }));
    expect(err.code).toBe('VIGIL_DATA_FORMAT');
    expect(err.message).toMatch(
      new RegExp(
        `record 2\\) is in format ${DATA_FORMATS.journal + 1}, written by a newer Vigil; this Vigil reads journal formats up to ${DATA_FORMATS.journal}`,
      ),
    );
    expect(err.hint).toMatch(/restore the copy of it taken before the upgrade/);
    await refusal(JournalReader.open(path, fileJournalStorage(), captureLogs().logger));
    // Nothing was written: the files are as the newer build left them.
    expect(await readdir(path)).toEqual(files);
  });

  test('a record of a type this build does not know is refused, not skipped', async () => {
    const path = await dir();
    const journal = await Journal.open({ dir: path, logger: captureLogs().logger });
    await append(journal, heartbeat);
    await append(journal, new Encoder({ useRecords: false }).encode([42, 'what', 1]));
    await journal.close();
    expect(() => decodeRecord(new Encoder({ useRecords: false }).encode([42]))).toThrow(DataFormatError);
    const err = await refusal(
      DurableInputs.open({ dir: path, logger: captureLogs().logger, registry: new Registry() }),
    );
    expect(err.message).toMatch(/a record of type 42\) is in a newer format/);
  });
});

function checkpointOf(seq: number, version: number, writtenBy?: string): CheckpointState {
  const loaded = compileRuleFiles([
    { path: 'a.yaml', text: 'id: a\nwhen: { event: x }\nthen: { action: y, to: [upstream] }\n' },
  ]);
  if (!loaded.ok) throw new Error('rules');
  const engine = new Engine(loaded.rules, { gateway: 'gw' }).snapshot();
  const state = {
    version,
    seq,
    at: 1_000,
    engine,
    arbiter: { version: 1, contact: [], cooldowns: [], active: [] },
    lastSeen: [],
    duplicates: [],
    ...(writtenBy === undefined ? {} : { writtenBy }),
  };
  return state as unknown as CheckpointState;
}

describe('checkpoints', () => {
  test('one of a newer format is refused, naming the release that wrote it; the older one is not used instead', async () => {
    const path = await dir();
    const checkpoints = new Checkpoints(path, fileJournalStorage(), captureLogs().logger);
    await checkpoints.write(checkpointOf(3, 1));
    await checkpoints.write(checkpointOf(8, DATA_FORMATS.checkpoint + 1, '9.4.0'));
    const err = await refusal(new Checkpoints(path, fileJournalStorage(), captureLogs().logger).latest());
    expect(err.message).toMatch(
      new RegExp(
        `a checkpoint in .*checkpoint-0000000000000008.cbor is in format ${DATA_FORMATS.checkpoint + 1}, written by Vigil 9.4.0`,
      ),
    );
    expect(err.hint).toMatch(/^run Vigil 9.4.0 or a newer one on this data directory/);
    await refusal(DurableInputs.open({ dir: path, logger: captureLogs().logger, registry: new Registry() }));
  });

  test('an engine state of a newer version is refused rather than started empty', async () => {
    const path = await dir();
    const state = checkpointOf(4, 1);
    (state.engine as { version: number }).version = 2;
    // The first file format (`VGCK`: one CBOR body), which the encoder of today no longer writes.
    const body = new Encoder({ useRecords: false }).encode(state);
    const header = Buffer.alloc(12);
    header.write('VGCK', 0, 'latin1');
    header.writeUInt32LE(body.length, 4);
    header.writeUInt32LE(crc32(body), 8);
    await writeFile(join(path, 'checkpoint-0000000000000004.cbor'), Buffer.concat([header, body]));
    const err = await refusal(new Checkpoints(path, fileJournalStorage(), captureLogs().logger).latest());
    expect(err.found).toBe(2);
  });

  test('the checkpoints this build writes name its release', async () => {
    const path = await dir();
    const durable = await DurableInputs.open({
      dir: path,
      logger: captureLogs().logger,
      registry: new Registry(),
    });
    expect(durable.recordedWall).toBeUndefined();
    await durable.close();
    const checkpoints = new Checkpoints(path, fileJournalStorage(), captureLogs().logger);
    await checkpoints.write({ ...checkpointOf(2, 1), writtenBy: releaseVersion() });
    expect((await checkpoints.latest())?.writtenBy).toBe(releaseVersion());
  });
});

describe('the LevelDB store', () => {
  test('one written before formats were numbered opens as format 1 and is stamped; a newer one is refused', async () => {
    const path = await dir();
    const store = await openStore(path);
    await store.sublevels.state.del(STORE_FORMAT_KEY);
    await store.profiles.put('dev-1', { site: 'north' });
    await store.close();

    const upgraded = await openStore(path);
    expect(await upgraded.sublevels.state.get(STORE_FORMAT_KEY)).toEqual({
      format: 1,
      writtenBy: releaseVersion(),
    });
    expect(await upgraded.profiles.get('dev-1')).toEqual({ site: 'north' });
    await upgraded.sublevels.state.put(STORE_FORMAT_KEY, {
      format: DATA_FORMATS.store + 1,
      writtenBy: '9.4.0',
    });
    await upgraded.close();

    const err = await refusal(openStore(path));
    expect(err.message).toBe(
      `the database (profiles, outboxes, sessions, bundles) in ${path} is in format ${DATA_FORMATS.store + 1}, written by Vigil 9.4.0; this Vigil reads store formats up to ${DATA_FORMATS.store}`,
    );
    // Refused before anything read a value, and the database is closed again: another attempt gets the same answer.
    await refusal(openStore(path, { createIfMissing: false }));
  });
});
