import net from 'node:net';
import fc from 'fast-check';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { CredentialStore } from '../../src/credentials/index.js';
import { tempDir } from '../helpers/temp.js';

// One gateway for the file: each case must leave it serving, which is what is being tested.
let gateway: Gateway;
let removeDir: () => Promise<void>;
let secret: string;
let healthy: MqttClient;

beforeAll(async () => {
  const dir = await tempDir('vigil-hostile-');
  removeDir = () => dir.remove();
  gateway = await startGateway(
    parseConfig({
      data: dir.path,
      mqtt: { host: '127.0.0.1', port: 0, maxPacketBytes: 64 * 1024, publishRate: { perSecond: 0 } },
      http: { port: 0 },
      log: { level: 'silent' },
    }),
  );
  const creds = new CredentialStore(gateway.store.sublevels.creds);
  secret = await creds.add('dev-1');
  await creds.add('healthy');
  healthy = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
    clientId: 'healthy',
    username: 'healthy',
    password: (await creds.rotate('healthy')).toString(),
    reconnectPeriod: 0,
  });
});

afterAll(async () => {
  await healthy.endAsync();
  await gateway.stop();
  await removeDir();
});

// --- raw MQTT 3.1.1 packets, built by hand so that they can be broken on purpose ---

function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}

const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};

const packet = (typeAndFlags: number, body: Buffer) =>
  Buffer.concat([Buffer.from([typeAndFlags]), remainingLength(body.length), body]);

function connectPacket(clientId: string, username?: string, password?: string): Buffer {
  const flags = 0x02 | (username !== undefined ? 0x80 : 0) | (password !== undefined ? 0x40 : 0);
  const body = Buffer.concat([
    str('MQTT'),
    Buffer.from([0x04, flags, 0x00, 0x3c]),
    str(clientId),
    ...(username !== undefined ? [str(username)] : []),
    ...(password !== undefined ? [str(password)] : []),
  ]);
  return packet(0x10, body);
}

const publishPacket = (topic: string | Buffer, payload: string, qos: 0 | 1 = 0) =>
  packet(
    0x30 | (qos << 1),
    Buffer.concat([str(topic), ...(qos > 0 ? [Buffer.from([0x00, 0x01])] : []), Buffer.from(payload)]),
  );

const CONNACK_OK = Buffer.from([0x20, 0x02, 0x00, 0x00]);

interface RawResult {
  /** Every byte the gateway sent before the connection closed. */
  received: Buffer;
  /** It closed the connection (rather than the test timing out). */
  closed: boolean;
}

/** Writes the chunks to a fresh connection, half-closes if asked, and waits for the gateway to close it. */
async function send(chunks: Buffer[], opts: { end?: boolean; waitMs?: number } = {}): Promise<RawResult> {
  const socket = net.connect(gateway.mqtt.port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const received: Buffer[] = [];
  socket.on('data', (d: Buffer) => received.push(d));
  const closed = new Promise<boolean>((resolve) => {
    socket.once('close', () => resolve(true));
    setTimeout(() => resolve(false), opts.waitMs ?? 3_000);
  });
  for (const chunk of chunks) socket.write(chunk);
  if (opts.end) socket.end();
  const result = { received: Buffer.concat(received), closed: await closed };
  result.received = Buffer.concat(received);
  socket.destroy();
  return result;
}

const login = () => connectPacket('dev-1', 'dev-1', secret);

/** The healthy device still publishes with QoS 1 and gets its PUBACK. */
async function othersStillServed(): Promise<void> {
  await healthy.publishAsync('devices/healthy/events/telemetry', '{"temp":20}', { qos: 1 });
  expect(healthy.connected).toBe(true);
}

async function protocolErrors(): Promise<number> {
  const metric = await gateway.metrics.registry.getSingleMetric('vigil_mqtt_protocol_errors_total')?.get();
  return metric?.values[0]?.value ?? 0;
}

describe('malformed packets on the broker socket: that connection drops, the others are served', () => {
  test.each<[string, () => Buffer[], { end?: boolean }]>([
    ['a CONNECT cut short, then the end of the stream', () => [login().subarray(0, 12)], { end: true }],
    [
      'a PUBLISH cut short after a good CONNECT',
      () => [login(), publishPacket('devices/dev-1/events/t', '{}').subarray(0, 9)],
      { end: true },
    ],
    ['a remaining length of five bytes', () => [Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f])], {}],
    ['a remaining length of 256 MB', () => [Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])], {}],
    [
      'a packet over the size limit after CONNECT',
      () => [login(), publishPacket('devices/dev-1/events/t', 'x'.repeat(70_000))],
      {},
    ],
    ['a PUBLISH before CONNECT', () => [publishPacket('devices/dev-1/events/t', '{}')], {}],
    ['a second CONNECT', () => [login(), login()], {}],
    ['a reserved packet type (0)', () => [login(), Buffer.from([0x00, 0x00])], {}],
    ['a reserved packet type (15)', () => [login(), Buffer.from([0xf0, 0x00])], {}],
    [
      'a SUBSCRIBE with wrong flags',
      () => [
        login(),
        packet(0x80, Buffer.concat([Buffer.from([0, 1]), str('devices/dev-1/commands/#'), Buffer.from([0])])),
      ],
      {},
    ],
    [
      'a PUBLISH with QoS 3',
      () => [
        login(),
        packet(0x36, Buffer.concat([str('devices/dev-1/events/t'), Buffer.from([0, 1, 0x7b, 0x7d])])),
      ],
      {},
    ],
    ['a wildcard in a PUBLISH topic', () => [login(), publishPacket('devices/dev-1/events/#', '{}')], {}],
    [
      'a protocol name that is not MQTT',
      () => [packet(0x10, Buffer.concat([str('MQXX'), Buffer.from([4, 2, 0, 60]), str('x')]))],
      {},
    ],
    [
      'a protocol level of 9',
      () => [packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([9, 2, 0, 60]), str('x')]))],
      {},
    ],
    [
      'a topic that is not UTF-8',
      () => [
        login(),
        publishPacket(Buffer.from([...Buffer.from('devices/dev-1/events/'), 0xff, 0xfe]), '{}', 1),
      ],
      {},
    ],
    ['a topic holding U+0000', () => [login(), publishPacket('devices/dev-1/events/a\u0000b', '{}', 1)], {}],
  ])('%s', async (_name, chunks, opts) => {
    const result = await send(chunks(), opts);
    expect(result.closed).toBe(true);
    // Nothing was acknowledged: at most the CONNACK of the good CONNECT.
    expect(result.received.length === 0 || result.received.equals(CONNACK_OK)).toBe(true);
    await othersStillServed();
  });

  test('the topics that break the protocol are counted', async () => {
    const before = await protocolErrors();
    await send([
      login(),
      publishPacket(Buffer.from([...Buffer.from('devices/dev-1/events/'), 0xc3, 0x28]), '{}', 1),
    ]);
    expect(await protocolErrors()).toBe(before + 1);
  });

  test('random bytes after a CONNECT, or instead of one, never take the gateway down', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { minLength: 1, maxLength: 4 }),
        async (loggedIn, garbage) => {
          const chunks = [...(loggedIn ? [login()] : []), ...garbage.map((g) => Buffer.from(g))];
          await send(chunks, { end: true, waitMs: 1_000 });
          await othersStillServed();
        },
      ),
      // Bounded: as many runs as fit in a few seconds, at most 60.
      { numRuns: 60, interruptAfterTimeLimit: 8_000 },
    );
  });

  test('mutations of a valid session never take the gateway down', async () => {
    const valid = Buffer.concat([
      login(),
      publishPacket('devices/dev-1/events/telemetry', '{"temp":21}', 1),
      packet(0x82, Buffer.concat([Buffer.from([0, 2]), str('devices/dev-1/commands/#'), Buffer.from([1])])),
      Buffer.from([0xc0, 0x00]),
    ]);
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ at: fc.nat({ max: valid.length - 1 }), byte: fc.integer({ min: 0, max: 255 }) }),
          {
            minLength: 1,
            maxLength: 6,
          },
        ),
        async (flips) => {
          const mutated = Buffer.from(valid);
          for (const { at, byte } of flips) mutated[at] = byte;
          await send([mutated], { end: true, waitMs: 1_000 });
          await othersStillServed();
        },
      ),
      { numRuns: 60, interruptAfterTimeLimit: 8_000 },
    );
  });
});
