import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test, type TestContext } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import { fileJournalStorage, Journal } from '../../src/runtime/index.js';
import { waitUntil, writeRules } from '../e2e/crash-harness.js';
import { tempDir } from '../helpers/temp.js';
import { mountTmpfs } from '../helpers/tmpfs.js';
import { captureLogs, faultyStorage, type FaultyStorage } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const RULES = {
  'reading.yaml': `id: reading
description: Every reading becomes an action, with its number.
priority: 50
category: maintenance
when:
  event: telemetry
then:
  action: log-reading
  to: [upstream]
  payload:
    n: data.n
`,
};

interface Health {
  status: string;
  durability: { state: string; fault?: { error: string }; checkpointFault?: { error: string } };
}

interface Run {
  gateway: Gateway;
  lines: Array<Record<string, unknown>>;
  device: MqttClient;
  publish(n: number): Promise<unknown>;
  health(): Promise<Health>;
  metric(series: string): Promise<number>;
  /** Reading numbers of the actions in the outbox (there is no upstream: they stay there). */
  actions(): number[];
  stop(): Promise<void>;
}

async function dataDir(): Promise<{ data: string; rules: string }> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  return { data: join(dir.path, 'data'), rules: await writeRules(join(dir.path, 'rules'), RULES) };
}

async function run(
  dirs: { data: string; rules: string },
  storage: FaultyStorage,
  durability: Record<string, unknown>,
): Promise<Run> {
  const { logger, lines } = captureLogs();
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: dirs.data,
      rules: dirs.rules,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      durability,
    }),
    { logger, journalStorage: storage },
  );
  let stopped = false;
  cleanups.push(() => (stopped ? Promise.resolve() : gateway.stop()));
  await gateway.recovered;
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
    clientId: 'dev-1',
    reconnectPeriod: 0,
  });
  device.on('error', () => undefined);
  cleanups.push(() => device.endAsync(true));
  const base = `http://127.0.0.1:${gateway.http.port}`;
  return {
    gateway,
    lines,
    device,
    publish: (n) => device.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ n }), { qos: 1 }),
    health: async () => (await (await fetch(`${base}/healthz`)).json()) as Health,
    metric: async (series) => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.slice(series.length + 1));
    },
    actions: () =>
      gateway.store.outbox
        .next(10_000)
        .map((a) => (a.payload as { n: number }).n)
        .sort((a, b) => a - b),
    async stop() {
      stopped = true;
      await device.endAsync(true);
      await gateway.stop();
    },
  };
}

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const segments = async (data: string) =>
  (await readdir(join(data, 'journal'))).filter((n) => n.endsWith('.wal')).length;

describe('ENOSPC during a checkpoint write', () => {
  test('inputs go on being recorded and decided, the gateway says checkpoints fail, and a restart replays what no checkpoint covers', async () => {
    const dirs = await dataDir();
    const storage = faultyStorage();
    const first = await run(dirs, storage, { checkpointInterval: '200ms' });
    await first.publish(1);
    await eventually(
      () => first.metric('vigil_checkpoints_total{result="written"}'),
      (v) => v >= 1,
      'a checkpoint written',
    );

    storage.fail('ENOSPC', ['replace']);
    await first.publish(2);
    await first.publish(3);
    const during = await eventually(
      () => first.health(),
      (h) => h.durability.checkpointFault !== undefined,
      'the failing checkpoints on /healthz',
    );
    expect(during.status).toBe('degraded');
    expect(during.durability.state).toBe('ok');
    expect(during.durability.checkpointFault?.error).toMatch(/ENOSPC/);
    await waitUntil(() => first.actions().length === 3, 5_000, 'the actions of readings 2 and 3');
    expect(first.lines.some((l) => String(l.msg).startsWith('checkpoint not written'))).toBe(true);

    storage.heal();
    await eventually(
      () => first.health(),
      (h) => h.status === 'ok' && h.durability.checkpointFault === undefined,
      'checkpoints written again',
    );
    expect(first.lines.some((l) => l.msg === 'checkpoint written again')).toBe(true);

    // Failing again when the gateway stops: the shutdown's checkpoint is not written either.
    await first.publish(4);
    storage.fail('ENOSPC', ['replace']);
    await first.publish(5);
    await waitUntil(() => first.actions().length === 5, 5_000, 'the actions of readings 4 and 5');
    await first.stop();

    const second = await run(dirs, faultyStorage(), { checkpointInterval: '200ms' });
    expect((await second.gateway.recovered).replayed).toBeGreaterThanOrEqual(1);
    expect(second.actions()).toEqual([1, 2, 3, 4, 5]);
    expect(second.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  test('the checkpoint after a replay that fails is tried again at the interval, with no input meanwhile', async () => {
    const dirs = await dataDir();
    const storage = faultyStorage();
    const first = await run(dirs, storage, { checkpointInterval: '1h' });
    await first.publish(1);
    storage.fail('ENOSPC', ['replace']);
    await first.stop(); // no checkpoint on the way out: the next start replays reading 1

    const second = await run(dirs, storage, { checkpointInterval: '200ms' });
    expect((await second.gateway.recovered).replayed).toBeGreaterThanOrEqual(1);
    await eventually(
      () => second.health(),
      (h) => h.durability.checkpointFault !== undefined,
      'the failed checkpoint after the replay on /healthz',
    );
    storage.heal();
    await eventually(
      () => second.health(),
      (h) => h.status === 'ok' && h.durability.checkpointFault === undefined,
      'the checkpoint written at the next interval',
    );
    expect(second.actions()).toEqual([1]);
  });

  test('a failing checkpoint due by the record count is not tried again on every input', async () => {
    const dirs = await dataDir();
    const storage = faultyStorage();
    const gw = await run(dirs, storage, { checkpointInterval: '1h', checkpointRecords: 2 });
    storage.fail('ENOSPC', ['replace']);
    for (let n = 1; n <= 3; n++) await gw.publish(n);
    await eventually(
      () => gw.metric('vigil_checkpoints_total{result="failed"}'),
      (v) => v === 1,
      'one failed checkpoint',
    );
    const before = await segments(dirs.data);
    for (let n = 4; n <= 20; n++) await gw.publish(n);
    await waitUntil(() => gw.actions().length === 20, 5_000, 'every action');
    expect(await gw.metric('vigil_checkpoints_total{result="failed"}')).toBe(1);
    // Each attempt starts a new segment: none were.
    expect(await segments(dirs.data)).toBe(before);
  });
});

describe('ENOSPC during a segment rotation', () => {
  test('the journal holds what comes after it and resumes when a segment can be created; a restart has every record once', async () => {
    const dirs = await dataDir();
    const storage = faultyStorage();
    const first = await run(dirs, storage, { checkpointInterval: '200ms' });
    await first.publish(1);
    await eventually(
      () => first.metric('vigil_checkpoints_total{result="written"}'),
      (v) => v >= 1,
      'a checkpoint written',
    );

    // The next checkpoint rotates the journal: the new segment cannot be created.
    storage.fail('ENOSPC', ['create']);
    await first.publish(2);
    const during = await eventually(
      () => first.health(),
      (h) => h.durability.state === 'storage-fault',
      'the storage fault on /healthz',
    );
    expect(during.durability.fault?.error).toMatch(/ENOSPC/);
    let acked = false;
    const held = first.publish(3).then(() => (acked = true));
    await new Promise((r) => setTimeout(r, 500));
    expect(acked).toBe(false);
    expect(first.actions()).toEqual([1, 2]);

    storage.heal();
    await held;
    await waitUntil(() => first.actions().length === 3, 5_000, 'the action of reading 3');
    await eventually(
      () => first.health(),
      (h) => h.status === 'ok',
      '/healthz back to ok',
    );
    await first.publish(4);
    await waitUntil(() => first.actions().length === 4, 5_000, 'the action of reading 4');
    await first.stop();

    const second = await run(dirs, faultyStorage(), {});
    expect(second.actions()).toEqual([1, 2, 3, 4]);
    // Nothing to warn of: no damaged segment, no gap.
    expect(
      second.lines.filter((l) => (l.level as number) >= 40 && !String(l.msg).startsWith('ANONYMOUS')),
    ).toEqual([]);
  });

  test('a rotation that cannot create its segment, and rewrites whose sync fails, leave no segment behind and lose no record', async () => {
    const dir = join((await dataDir()).data, 'journal');
    const storage = faultyStorage();
    const journal = await Journal.open({
      dir,
      logger: captureLogs().logger,
      storage,
      segmentBytes: 64,
      retryMinMs: 5,
      retryMaxMs: 20,
    });
    cleanups.push(() => journal.close(100));
    const append = (text: string): Promise<void> => {
      journal.append(Buffer.from(text), 'sync');
      return journal.recorded();
    };
    await append('r1');
    await journal.sync();
    const before = (await readdir(dir)).filter((n) => n.endsWith('.wal'));

    // r2 fills the segment past 64 bytes: its rotation cannot create the next segment, then each retry's
    // fresh segment fails to sync.
    storage.fail('ENOSPC', ['create']);
    const done: string[] = [];
    const r2 = append('r2-'.padEnd(60, 'x')).then(() => done.push('r2'));
    await waitUntil(() => journal.fault !== undefined, 2_000, 'the fault');
    const r3 = append('r3').then(() => done.push('r3'));
    storage.fail('ENOSPC', ['fdatasync']);
    const createsRefused = storage.refused;
    await waitUntil(() => storage.refused >= createsRefused + 3, 2_000, 'retries whose sync fails');
    // Once no segment can be created, the attempts before have cleaned up after themselves. Syncs still fail:
    // an attempt that created its segment just before keeps failing as the ones before it did, and cleans up.
    storage.fail('ENOSPC', ['create', 'fdatasync']);
    const refused = storage.refused;
    await waitUntil(() => storage.refused >= refused + 2, 2_000, 'retries');
    // r2 is synced, but its commit (which rotates) has not ended: it is reported with what comes after it.
    expect(done).toEqual([]);
    expect((await readdir(dir)).filter((n) => n.endsWith('.wal'))).toEqual(before);

    storage.heal();
    await Promise.all([r2, r3]);
    expect(done).toEqual(['r2', 'r3']);
    await journal.close();
    const reopened = await Journal.open({ dir, logger: captureLogs().logger });
    cleanups.push(() => reopened.close(100));
    const texts: string[] = [];
    for await (const { payload } of reopened.read(0)) texts.push(payload.toString().slice(0, 2));
    expect(texts).toEqual(['r1', 'r2', 'r3']);
  });
});

describe('a checkpoint replaced on a full disk (tmpfs)', () => {
  test('fails with ENOSPC, keeps the previous one and leaves no half-written copy taking room', async (ctx: TestContext) => {
    const disk = await mountTmpfs(1024 * 1024);
    if (typeof disk === 'string') ctx.skip(disk);
    cleanups.push(() => disk.unmount());
    const storage = fileJournalStorage();
    const path = join(disk.path, 'checkpoint-0000000000000001.cbor');
    await writeFile(path, 'previous');
    disk.fill(64 * 1024);
    await expect(storage.replace(path, Buffer.alloc(256 * 1024, 1))).rejects.toMatchObject({
      code: 'ENOSPC',
    });
    expect((await readdir(disk.path)).sort()).toEqual(['ballast', 'checkpoint-0000000000000001.cbor']);
    expect(await readFile(path, 'utf8')).toBe('previous');
    expect(await disk.freeBytes()).toBeGreaterThanOrEqual(60 * 1024);
  });
});
