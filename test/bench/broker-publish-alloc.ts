// What the embedded broker allocates per device event publish, from the socket read to its PUBACK written (QoS 1)
// or to the publish done (QoS 0): `startBroker` on 127.0.0.1 with a hook that stands in for ingest and the journal
// (QoS 1: every publish of a turn waits for one shared promise, settled after the turn, as a group commit's), DEVICES
// raw clients each writing a few PUBLISH packets a turn. Counted as alloc-probe.ts counts (the heap's growth plus what
// each collection freed), over the whole process: the clients' part (a view of a prepared buffer per write, the
// reads of the PUBACKs) is the same for every build of the broker, so builds compare by the difference.
// node --import tsx test/bench/broker-publish-alloc.ts [--qos 0|1] [--publishes N] [--devices N] [--per-turn N]
//   [--heap-prof FILE]
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import mqttPacket from 'mqtt-packet';
import { pino } from 'pino';
import { startBroker } from '../../src/broker/index.js';
import { allocated, heapProfiled } from './allocated.js';

const { values } = parseArgs({
  options: {
    qos: { type: 'string', default: '1' },
    publishes: { type: 'string', default: '200000' },
    devices: { type: 'string', default: '100' },
    'per-turn': { type: 'string', default: '2' },
    'heap-prof': { type: 'string' },
  },
});
const qos = values.qos === '0' ? 0 : 1;
const publishes = Number(values.publishes);
const devices = Number(values.devices);
const perTurn = Number(values['per-turn']);

/** The journal's part, as the broker sees it: the publishes of a turn share one promise, settled after the turn. */
let commit: Promise<void> | undefined;
function shared(): Promise<void> {
  commit ??= new Promise<void>((resolve) =>
    setImmediate(() => {
      commit = undefined;
      resolve();
    }),
  );
  return commit;
}

const broker = await startBroker({
  host: '127.0.0.1',
  port: 0,
  maxPacketBytes: 64 * 1024,
  logger: pino({ level: 'silent' }),
  hooks: {
    onPublish: () => (qos === 1 ? shared() : undefined),
    onConnected: () => undefined,
    onDisconnected: () => undefined,
  },
});

interface Device {
  socket: Socket;
  /** Every publish it will send, end to end: written a few at a time. */
  wire: Buffer;
  packetBytes: number;
  sent: number;
  /** Bytes read back (PUBACKs, 4 each). */
  read: number;
}

async function device(i: number, count: number): Promise<Device> {
  const socket = connect({ host: '127.0.0.1', port: broker.address.port });
  socket.setNoDelay(true);
  await once(socket, 'connect');
  socket.write(
    mqttPacket.generate({ cmd: 'connect', clientId: `d${i}`, protocolVersion: 4, clean: true, keepalive: 0 }),
  );
  await once(socket, 'data');
  const payload = Buffer.from(JSON.stringify({ temp: 21.5, hum: 40, bat: 88, ts: 1_765_000_000_000 }));
  const packets = Array.from({ length: count }, (_, n) =>
    mqttPacket.generate({
      cmd: 'publish',
      topic: `devices/d${i}/events/telemetry`,
      payload,
      qos,
      dup: false,
      retain: false,
      ...(qos === 1 ? { messageId: (n % 65_535) + 1 } : {}),
    }),
  );
  const d: Device = {
    socket,
    wire: Buffer.concat(packets),
    packetBytes: packets[0]?.length ?? 0,
    sent: 0,
    read: 0,
  };
  socket.on('data', (chunk: Buffer) => (d.read += chunk.length));
  return d;
}

/** Each device sends `count` publishes, `perTurn` to a write; resolves once all are acknowledged (QoS 1). */
async function run(list: Device[], count: number): Promise<void> {
  for (const d of list) {
    d.sent = 0;
    d.read = 0;
  }
  for (let sent = 0; sent < count; sent += perTurn) {
    const n = Math.min(perTurn, count - sent);
    for (const d of list) {
      d.socket.write(d.wire.subarray(d.sent * d.packetBytes, (d.sent + n) * d.packetBytes));
      d.sent += n;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (qos === 0) {
    // No acknowledgement to wait for: let the broker read what is in flight.
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setTimeout(resolve, 2));
    return;
  }
  while (list.some((d) => d.read < d.sent * 4)) await new Promise((resolve) => setTimeout(resolve, 1));
}

const perDevice = Math.ceil(publishes / devices);
const list = await Promise.all(Array.from({ length: devices }, (_, i) => device(i, perDevice)));
await run(list, Math.ceil(perDevice / 5));
const a = await heapProfiled(values['heap-prof'], () =>
  allocated(() => run(list, perDevice), perDevice * devices),
);
process.stdout.write(
  `QoS ${qos}, ${devices} devices, ${perTurn} publishes a turn each: ${a.bytes.toFixed(0)} B and ` +
    `${a.cpuUs.toFixed(2)} µs per publish (the whole process: broker and clients)\n`,
);
for (const d of list) d.socket.destroy();
await broker.close();
