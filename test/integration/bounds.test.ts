import { cp, readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import {
  DecisionLoop,
  DurableInputs,
  LastSeen,
  Recorder,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
} from '../../src/runtime/index.js';
import { QueueFullError, type Event } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';
import { QUIET_RULES } from '../helpers/quiet-rules.js';

/** Each bound on memory refuses (or forgets) past its limit, and counts what it refused. */

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function dataDir(): Promise<string> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  return dir.path;
}

/** A sample of the registry's exposition, `name{labels}` as exposed. */
async function sample(registry: Registry, series: string): Promise<number | undefined> {
  const text = await registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const rules = QUIET_RULES;

/** The journal in `dir` with a decision loop over it; recovered (live) unless `recover` is false. */
async function openInputs(
  dir: string,
  limits: { maxHeld?: number; maxLastSeen?: number },
  recover = true,
): Promise<{ durable: DurableInputs; loop: DecisionLoop; registry: Registry }> {
  const registry = new Registry();
  const durable = await DurableInputs.open({
    dir: join(dir, 'journal'),
    logger: captureLogs().logger,
    registry,
    settings: { checkpointIntervalMs: 3_600_000, checkpointRecords: 1_000_000_000 },
    limits,
  });
  cleanups.push(() => durable.close());
  const restored = durable.restore(rules, { gateway: 'gw1' }, rulesRecordOf(rules, 'dir', 0));
  const loop = new DecisionLoop({
    rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
    scheduler: new VirtualScheduler(1_000_000),
    outputs: { verdict: () => undefined },
  });
  if (recover) {
    await durable.recover({
      loop,
      clock: { now: () => 1_000_000 },
      profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
      pendingWrites: () => new Set(),
      forward: () => undefined,
    });
  }
  return { durable, loop, registry };
}

function deviceEvent(actor: string, type: string, at: number): Event {
  return { actor, type, at, data: {}, source: 'device' };
}

describe('held inputs', () => {
  test('past the bound a QoS 1 event is refused (not acknowledged) and a QoS 0 one dropped, both counted', async () => {
    // Not recovered: every recorded input is held, as during a recovery.
    const { durable, registry } = await openInputs(await dataDir(), { maxHeld: 5 }, false);
    // The rules record of the start is held already.
    const room = 5 - durable.health().held;
    expect(room).toBeGreaterThan(0);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        durable.submitEvent(deviceEvent(`d${i}`, 'reading', i), undefined, 'sync'),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(room);
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused).toHaveLength(8 - room);
    expect((refused[0] as PromiseRejectedResult).reason).toBeInstanceOf(QueueFullError);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'VIGIL_QUEUE_FULL' });

    await durable.submitEvent(deviceEvent('d9', 'reading', 9), undefined, 'write');
    expect(durable.health().held).toBe(5);
    expect(await sample(registry, 'vigil_queue_refused_total{queue="held"}')).toBe(8 - room + 1);
    expect(await sample(registry, 'vigil_queue_length{queue="held"}')).toBe(5);

    // A connection change is never refused: it is not sent again.
    await durable.submitEvent(
      { actor: 'd0', type: 'connected', at: 10, data: {}, source: 'broker' },
      undefined,
      'write',
    );
    expect(durable.health().held).toBe(6);
  });
});

describe('last-seen times', () => {
  test('past the bound the device seen longest ago is forgotten, counted', () => {
    const evicted: string[] = [];
    const seen = new LastSeen([], 3, (reason, n) => evicted.push(`${reason}:${n}`));
    for (const [i, actor] of ['a', 'b', 'c', 'd', 'b', 'e'].entries()) seen.see(deviceEvent(actor, 'x', i));
    expect([...seen.times.keys()]).toEqual(['d', 'b', 'e']);
    expect(evicted).toEqual(['bound:1', 'bound:1']);
  });

  test("a checkpoint's copy holds the times as of when it was taken, oldest first", () => {
    const seen = new LastSeen([], 10, () => undefined);
    for (const [i, actor] of ['a', 'b', 'c', 'a'].entries()) seen.see(deviceEvent(actor, 'x', i * 1_000));
    const frozen = seen.frozenEntries();
    seen.see(deviceEvent('b', 'x', 9_000));
    seen.see(deviceEvent('d', 'x', 9_500));
    const expected = [
      ['b', 1_000],
      ['c', 2_000],
      ['a', 3_000],
    ];
    expect([...frozen]).toEqual(expected);
    // Read again (a checkpoint tried again reads a new copy; this one gives the same).
    expect([...frozen]).toEqual(expected);
    expect([...seen.frozenEntries()]).toEqual([...seen.entries()]);
  });

  test('only devices connected, known or awaited by a timer keep their last-seen time', async () => {
    const dir = await dataDir();
    const { durable, loop, registry } = await openInputs(dir, {});
    const at = 1_000_000;
    // `awaited` sent a heartbeat: the silence of `quiet` waits on it. `stranger` sent something else.
    await durable.submitEvent(deviceEvent('awaited', 'heartbeat', at), undefined, 'sync');
    await durable.submitEvent(deviceEvent('stranger', 'reading', at), undefined, 'sync');
    await durable.submitEvent(deviceEvent('known', 'reading', at), undefined, 'sync');
    await durable.submitEvent(
      { actor: 'online', type: 'connected', at, data: {}, source: 'broker' },
      undefined,
      'sync',
    );
    await durable.submitEvent(deviceEvent('later', 'reading', at + 60_001), undefined, 'sync');
    const waitedOn = (actor: string) => loop.rules.engine.waitsOn(actor);
    expect(['awaited', 'stranger', 'known', 'online', 'later'].filter(waitedOn)).toEqual(['awaited']);

    const forget = await durable.unneededLastSeen(
      { waitedOn, known: (actor) => Promise.resolve(actor === 'known') },
      at + 60_000,
    );
    expect(forget).toEqual(['stranger']);
    // Forgotten as the pass's journal record is applied.
    expect(durable.hasSeen('stranger')).toBe(true);
    await durable.submitPrune(at + 60_000, forget);
    for (const actor of ['awaited', 'known', 'online', 'later']) expect(durable.hasSeen(actor)).toBe(true);
    expect(durable.hasSeen('stranger')).toBe(false);
    expect(await sample(registry, 'vigil_last_seen_evicted_total{reason="unneeded"}')).toBe(1);
    expect(await sample(registry, 'vigil_last_seen_devices')).toBe(4);

    // A crash now (no checkpoint since): recovery replays the record and forgets the same device.
    const crashed = join(dir, 'crashed');
    await cp(join(dir, 'journal'), join(crashed, 'journal'), { recursive: true });
    const recovered = await openInputs(crashed, {});
    expect(recovered.durable.hasSeen('stranger')).toBe(false);
    for (const actor of ['awaited', 'known', 'online', 'later'])
      expect(recovered.durable.hasSeen(actor)).toBe(true);

    // The checkpoint holds what is kept, and a restart goes on from it.
    await durable.checkpoint();
    await durable.close();
    const reopened = await openInputs(dir, {});
    expect(reopened.durable.hasSeen('awaited')).toBe(true);
    expect(reopened.durable.hasSeen('stranger')).toBe(false);
    // The silence still fires for the device whose last-seen time was kept.
    expect(reopened.loop.rules.engine.pendingTimers().map((t) => t.actor)).toEqual(['awaited']);
  });
});

describe('the record file', () => {
  test('past its bound an event is not recorded, counted; congested until what waits is written', async () => {
    const file = join(await dataDir(), 'record.ndjson');
    let refused = 0;
    const recorder = new Recorder(file, captureLogs().logger, {
      maxBytes: 2_000,
      onRefused: () => refused++,
    });
    const line = (i: number) => deviceEvent(`device-${i}`, 'reading', i);
    const lineBytes = JSON.stringify(line(10)).length + 1;
    // Written in one turn: nothing reaches the file until the turn ends, so the buffer fills.
    for (let i = 10; i < 110; i++) recorder.record(line(i));
    const kept = Math.ceil(2_000 / lineBytes);
    expect(refused).toBe(100 - kept);
    expect(recorder.congested).toBe(true);
    await recorder.relieved();
    expect(recorder.congested).toBe(false);
    recorder.record(line(200));
    await recorder.close();
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(kept + 1);
    expect(JSON.parse(lines.at(-1) as string)).toMatchObject({ actor: 'device-200' });
  });
});

describe('the ingest queue of a running gateway', () => {
  async function gateway(ingestQueue: number): Promise<Gateway> {
    const gw = await startGateway(
      parseConfig({
        gatewayId: 'gw1',
        data: await dataDir(),
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true, publishRate: { perSecond: 0 } },
        http: { port: 0 },
        limits: { ingestQueue },
        log: { level: 'silent' },
      }),
    );
    cleanups.push(() => gw.stop());
    await gw.recovered;
    return gw;
  }

  /** A raw MQTT connection: the publishes go in one write, so the broker takes them in together. */
  async function rawClient(
    port: number,
  ): Promise<{ socket: Socket; packets: mqttPacket.Packet[]; closed: Promise<void> }> {
    const socket = connect(port, '127.0.0.1');
    cleanups.push(() => Promise.resolve(socket.destroy()));
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const packets: mqttPacket.Packet[] = [];
    parser.on('packet', (p) => packets.push(p));
    socket.on('data', (chunk) => parser.parse(chunk));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        clientId: 'burst',
        keepalive: 0,
      }),
    );
    await waitFor(() => packets.some((p) => p.cmd === 'connack'));
    return { socket, packets, closed };
  }

  function publishes(n: number, qos: 0 | 1): Buffer {
    return Buffer.concat(
      Array.from({ length: n }, (_, i) =>
        mqttPacket.generate({
          cmd: 'publish',
          topic: `devices/new-${qos}-${i}/events/reading`,
          payload: Buffer.from('{"v":1}'),
          qos,
          dup: false,
          retain: false,
          ...(qos > 0 ? { messageId: i + 1 } : {}),
        }),
      ),
    );
  }

  async function metric(gw: Gateway, series: string): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${gw.http.port}/metrics`);
    const line = (await res.text()).split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? NaN : Number(line.slice(series.length + 1));
  }

  test('past the bound QoS 0 events of devices whose profile is being read are dropped, counted', async () => {
    const gw = await gateway(4);
    const client = await rawClient(gw.mqtt.port);
    client.socket.write(publishes(50, 0));
    await waitFor(async () => (await metric(gw, 'vigil_queue_refused_total{queue="ingest"}')) > 0);
    await waitFor(async () => (await metric(gw, 'vigil_queue_length{queue="ingest"}')) === 0);
    const refused = await metric(gw, 'vigil_queue_refused_total{queue="ingest"}');
    // Every publish is either refused or recorded: none is lost without a count.
    await waitFor(
      async () => (await metric(gw, 'vigil_journal_records_total{persist="write"}')) >= 50 - refused,
    );
    expect(refused).toBeGreaterThan(0);
    expect(refused).toBeLessThan(50);
  });

  test('past the bound a QoS 1 publish is not acknowledged: the connection closes for the device to send it again', async () => {
    const gw = await gateway(4);
    const client = await rawClient(gw.mqtt.port);
    client.socket.write(publishes(50, 1));
    await client.closed;
    const acked = client.packets.filter((p) => p.cmd === 'puback').length;
    expect(acked).toBeLessThan(50);
    expect(await metric(gw, 'vigil_queue_refused_total{queue="ingest"}')).toBeGreaterThan(0);
    // Every publish acknowledged was recorded first.
    expect(await metric(gw, 'vigil_journal_records_total{persist="sync"}')).toBeGreaterThanOrEqual(acked);
  });
});

async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
