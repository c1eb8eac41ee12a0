import { encode } from 'cbor-x';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { Ingest, type DeadLetter, type RejectReason } from '../../src/ingest/index.js';
import type { Event, EventSource } from '../../src/shared/index.js';

const LIMIT = 2048;

function harness(opts: { deadLetterThrows?: boolean } = {}) {
  const delivered: Event[] = [];
  const deadLetters: DeadLetter[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const accepted: Array<[string, EventSource]> = [];
  const rejected: RejectReason[] = [];
  const ingest = new Ingest({
    // Every device's profile is cached: these tests are about what is refused, not about ordering.
    profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
    clock: () => 42_000,
    logger: pino(
      { level: 'info' },
      { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
    ),
    maxPayloadBytes: LIMIT,
    deliver: (ev) => delivered.push(ev),
    deadLetter: (record) => {
      deadLetters.push(record);
      if (opts.deadLetterThrows) throw new Error('dead-letter topic unavailable');
    },
    metrics: {
      accepted: (type, source) => accepted.push([type, source]),
      rejected: (reason) => rejected.push(reason),
    },
  });
  return { ingest, delivered, deadLetters, logs, accepted, rejected };
}

const sensor = { id: 'sensor-7', address: '10.0.0.7:51234' };

describe('device publishes', () => {
  test('a good JSON event becomes an Event stamped with the arrival time, and is counted by type', () => {
    const h = harness();
    void h.ingest.handleDevicePublish(
      sensor,
      'devices/dev-1/events/telemetry',
      Buffer.from('{"temp":61,"ts":1700000000000}'),
      1,
    );
    expect(h.delivered).toEqual([
      {
        actor: 'dev-1',
        type: 'telemetry',
        at: 42_000,
        data: { temp: 61, ts: 1700000000000 },
        source: 'device',
        deviceAt: 1700000000000,
      },
    ]);
    expect(h.accepted).toEqual([['telemetry', 'device']]);
    expect(h.deadLetters).toEqual([]);
  });

  test('the same event as CBOR gives the same Event', () => {
    const h = harness();
    void h.ingest.handleDevicePublish(
      sensor,
      'devices/dev-1/events/telemetry',
      encode({ temp: 61, bat: 3.9 }),
      0,
    );
    expect(h.delivered).toEqual([
      { actor: 'dev-1', type: 'telemetry', at: 42_000, data: { temp: 61, bat: 3.9 }, source: 'device' },
    ]);
  });

  test('malformed JSON is dead-lettered with its reason, device and client, counted and logged, and not delivered', () => {
    const h = harness();
    void h.ingest.handleDevicePublish(sensor, 'devices/dev-1/events/telemetry', Buffer.from('{"temp":'), 1);
    expect(h.delivered).toEqual([]);
    expect(h.deadLetters).toEqual([
      {
        reason: 'json',
        detail: expect.any(String) as string,
        topic: 'devices/dev-1/events/telemetry',
        clientId: 'sensor-7',
        deviceId: 'dev-1',
        at: 42_000,
        payloadBase64: Buffer.from('{"temp":').toString('base64'),
      },
    ]);
    expect(h.rejected).toEqual(['json']);
    expect(h.logs).toContainEqual(
      expect.objectContaining({
        level: 40,
        reason: 'json',
        clientId: 'sensor-7',
        deviceId: 'dev-1',
        address: '10.0.0.7:51234',
      }),
    );
  });

  test('each way a payload can be wrong has its own reason', () => {
    const h = harness();
    const send = (payload: Buffer) => h.ingest.handleDevicePublish(sensor, 'devices/d/events/t', payload, 1);
    void send(Buffer.alloc(0));
    void send(Buffer.from('[1,2]'));
    void send(Buffer.from([0xa1, 0x61]));
    void send(Buffer.from(`{"pad":"${'x'.repeat(LIMIT)}"}`));
    expect(h.rejected).toEqual(['empty', 'not-object', 'cbor', 'too-large']);
    expect(h.deadLetters.map((d) => d.reason)).toEqual(h.rejected);
  });

  test('a dead letter carries at most the first KiB of the payload, and none when it was empty', () => {
    const h = harness();
    const big = Buffer.from(`{"pad":"${'x'.repeat(LIMIT)}"}`);
    void h.ingest.handleDevicePublish(sensor, 'devices/d/events/t', big, 1);
    void h.ingest.handleDevicePublish(sensor, 'devices/d/events/t', Buffer.alloc(0), 1);
    expect(Buffer.from(h.deadLetters[0]?.payloadBase64 ?? '', 'base64')).toEqual(big.subarray(0, 1024));
    expect(h.deadLetters[1]).not.toHaveProperty('payloadBase64');
  });

  test('a topic outside the scheme is refused, naming the device when the topic has one', () => {
    const h = harness();
    void h.ingest.handleDevicePublish(sensor, 'devices/dev-1/events/telemetry/extra', Buffer.from('{}'), 1);
    void h.ingest.handleDevicePublish(sensor, 'devices//events/telemetry', Buffer.from('{}'), 1);
    expect(h.deadLetters).toMatchObject([
      {
        reason: 'topic',
        deviceId: 'dev-1',
        clientId: 'sensor-7',
        topic: 'devices/dev-1/events/telemetry/extra',
      },
      { reason: 'topic', clientId: 'sensor-7', topic: 'devices//events/telemetry' },
    ]);
    expect(h.deadLetters[1]).not.toHaveProperty('deviceId');
    expect(h.delivered).toEqual([]);
  });

  test('a dead-letter sink that throws is logged and does not reach the broker', () => {
    const h = harness({ deadLetterThrows: true });
    expect(() =>
      h.ingest.handleDevicePublish(sensor, 'devices/d/events/t', Buffer.from('nope'), 1),
    ).not.toThrow();
    expect(h.logs).toContainEqual(
      expect.objectContaining({ level: 50, msg: 'dead letter could not be handed on' }),
    );
    void h.ingest.handleDevicePublish(sensor, 'devices/d/events/t', Buffer.from('{"ok":1}'), 1);
    expect(h.delivered).toHaveLength(1);
  });
});

describe('cloud events', () => {
  test('{actor, type, data} becomes a cloud Event', () => {
    const h = harness();
    void h.ingest.handleCloudEvent(
      Buffer.from(JSON.stringify({ actor: 'cpe-9', type: 'provisioned', data: { plan: 'fiber' } })),
    );
    void h.ingest.handleCloudEvent(Buffer.from(JSON.stringify({ actor: 'cpe-9', type: 'activated' })));
    expect(h.delivered).toEqual([
      { actor: 'cpe-9', type: 'provisioned', at: 42_000, data: { plan: 'fiber' }, source: 'cloud' },
      { actor: 'cpe-9', type: 'activated', at: 42_000, data: {}, source: 'cloud' },
    ]);
    expect(h.accepted).toEqual([
      ['provisioned', 'cloud'],
      ['activated', 'cloud'],
    ]);
  });

  test.each([
    [{ type: 'provisioned' }, 'actor'],
    [{ actor: '', type: 'provisioned' }, 'actor'],
    [{ actor: 'a/b', type: 'provisioned' }, 'actor'],
    [{ actor: 'cpe-9' }, 'type'],
    [{ actor: 'cpe-9', type: 'x', data: [1] }, 'data'],
  ])('%j is refused as invalid (%s)', (event, field) => {
    const h = harness();
    void h.ingest.handleCloudEvent(Buffer.from(JSON.stringify(event)), 'vigil/gw1/events');
    expect(h.delivered).toEqual([]);
    expect(h.deadLetters).toHaveLength(1);
    expect(h.deadLetters[0]).toMatchObject({ reason: 'invalid', topic: 'vigil/gw1/events', at: 42_000 });
    expect(h.deadLetters[0]?.detail).toContain(field);
    expect(h.deadLetters[0]).not.toHaveProperty('clientId');
  });

  test('an undecodable cloud event is refused with the decoding reason', () => {
    const h = harness();
    void h.ingest.handleCloudEvent(Buffer.from('{not json'));
    expect(h.deadLetters).toMatchObject([{ reason: 'json', topic: 'vigil/+/events' }]);
    expect(h.rejected).toEqual(['json']);
  });
});
