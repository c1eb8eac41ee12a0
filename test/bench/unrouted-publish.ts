// What aedes' publish path costs a device event no one subscribes to, after authorizePublish: `aedes.publish` from a
// client, with SUBSCRIPTIONS devices' command filters held, counted as alloc-probe.ts counts (the heap's growth plus
// what each collection freed), less what the loop alone allocates. `aedes`: aedes as it comes; `routes`: with the
// gateway's RouteTable as its router and its shortcut (persistent sessions holding no subscription that matches).
// node --import tsx test/bench/unrouted-publish.ts [--qos 0|1] [--publishes 300000] [--subscriptions 1000]
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import { RouteTable } from '../../src/broker/routes.js';

const { values } = parseArgs({
  options: {
    qos: { type: 'string', default: '0' },
    publishes: { type: 'string', default: '300000' },
    subscriptions: { type: 'string', default: '1000' },
  },
});
const qos = values.qos === '1' ? 1 : 0;
const publishes = Number(values.publishes);
const subscriptions = Number(values.subscriptions);

type Publish = (packet: PublishPacket, client: Client | null, done: () => void) => void;

async function broker(routed: boolean): Promise<{ aedes: Aedes; publish: Publish }> {
  const routes = new RouteTable();
  const aedes = await Aedes.createBroker({ concurrency: 0, ...(routed ? { mq: routes } : {}) });
  if (routed) routes.shortcut(aedes, { holdsSubscriptionMatching: () => false });
  for (let i = 0; i < subscriptions; i++) {
    await new Promise<void>((resolve) =>
      aedes.subscribe(`devices/d${i}/commands/#`, (_packet, done) => done(), resolve),
    );
  }
  return { aedes, publish: (aedes as unknown as { publish: Publish }).publish.bind(aedes) };
}

/** Publishes `count` events one after the other; `publish` undefined: only the loop (its packets and promises). */
async function run(count: number, publish: Publish | undefined, client: Client): Promise<void> {
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve) => {
      const packet: PublishPacket = {
        cmd: 'publish',
        topic: `devices/d${i % subscriptions}/events/telemetry`,
        payload: Buffer.from('{"temp":21.5}'),
        qos,
        retain: false,
        dup: false,
        messageId: 1,
      };
      if (publish === undefined) resolve();
      else publish(packet, client, resolve);
    });
  }
}

async function measure(
  publish: Publish | undefined,
  client: Client,
): Promise<{ bytes: number; cpuUs: number }> {
  await run(publishes / 10, publish, client);
  const profiler = new v8.GCProfiler();
  profiler.start();
  const usedBefore = v8.getHeapStatistics().used_heap_size;
  const cpu = process.cpuUsage();
  await run(publishes, publish, client);
  const used = process.cpuUsage(cpu);
  const usedAfter = v8.getHeapStatistics().used_heap_size;
  let freed = 0;
  for (const gc of profiler.stop().statistics)
    freed += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize;
  return {
    bytes: (usedAfter - usedBefore + freed) / publishes,
    cpuUs: (used.user + used.system) / publishes,
  };
}

for (const routed of [false, true]) {
  const { aedes, publish } = await broker(routed);
  const client = { id: 'd0', broker: aedes } as unknown as Client;
  const loop = await measure(undefined, client);
  const total = await measure(publish, client);
  process.stdout.write(
    `${routed ? 'routes' : 'aedes '}  QoS ${qos}: ${(total.bytes - loop.bytes).toFixed(0)} B, ` +
      `${(total.cpuUs - loop.cpuUs).toFixed(2)} µs CPU per publish\n`,
  );
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
}
