// What mqtt-packet's parser allocates per device event PUBLISH, one packet to a socket read as at a few events per
// second per device, counted as alloc-probe.ts counts; `--in-place`: with bl's reads in place
// (src/broker/packet-list.ts), as the gateway parses. Both with mqtt-packet's `debug` quiet, as in the gateway.
// node --import tsx test/bench/packet-parse-alloc.ts [--in-place] [--qos 0|1] [--packets N]
import { parseArgs } from 'node:util';
import { allocatedSync } from './allocated.js';

const { values } = parseArgs({
  options: {
    'in-place': { type: 'boolean', default: false },
    qos: { type: 'string', default: '0' },
    packets: { type: 'string', default: '500000' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'Usage: node --import tsx test/bench/packet-parse-alloc.ts [--in-place] [--qos 0|1] [--packets N]\n',
  );
  process.exit(0);
}
// As the gateway loads it: mqtt-packet's `debug` quiet (src/broker/quiet-debug.ts), before mqtt-packet.
await import('../../src/broker/quiet-debug.js');
const { default: mqttPacket } = await import('mqtt-packet');
if (values['in-place']) await import('../../src/broker/packet-list.js');
const qos = values.qos === '1' ? 1 : 0;
const packets = Number(values.packets);

// As the load generator sends them: one device's telemetry, its packet in a buffer of its own per read.
const payload = Buffer.from(JSON.stringify({ type: 'telemetry', data: { temperature: 21.5, humidity: 40 } }));
const wire = mqttPacket.generate({
  cmd: 'publish',
  topic: 'devices/d417/events',
  payload,
  qos,
  dup: false,
  retain: false,
  ...(qos === 1 ? { messageId: 42 } : {}),
});
const reads = Array.from({ length: 1_000 }, () => Buffer.from(wire));

let parsed = 0;
const parser = mqttPacket.parser();
parser.on('packet', () => parsed++);
const run = (count: number): void => {
  for (let i = 0; i < count; i++) parser.parse(reads[i % reads.length] as Buffer);
};
run(50_000);
const a = allocatedSync(() => run(packets), packets);
if (parsed !== packets + 50_000) throw new Error(`parsed ${parsed} of ${packets + 50_000}`);
process.stdout.write(
  `${values['in-place'] ? 'bl read in place' : 'bl as it comes'}, QoS ${qos}: ` +
    `${a.bytes.toFixed(0)} B and ${a.cpuUs.toFixed(2)} µs per PUBLISH parsed\n`,
);
