import { Aedes, type AedesPublishPacket } from 'aedes';
import { decode } from 'cbor-x';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import {
  EventSchedule,
  nowMs,
  planFleet,
  runSim,
  type SimOptions,
  type SimSummary,
} from '../../firmware-sim/index.js';

interface Received {
  clientId: string;
  topic: string;
  payload: Buffer;
  atMs: number;
}

/** A plain aedes on 127.0.0.1, port 0, that records what devices publish and how they leave. */
interface TestBroker {
  aedes: Aedes;
  server: Server;
  url: string;
  received: Received[];
  connects: string[];
  online: Set<string>;
  /** Client id → whether its last bytes before closing were a DISCONNECT packet. */
  leftWithDisconnect: Map<string, boolean>;
  leftAtMs: Map<string, number>;
}

let broker: TestBroker | undefined;

async function startBroker(): Promise<TestBroker> {
  const aedes = await Aedes.createBroker();
  const lastChunk = new WeakMap<object, Buffer>();
  const server = createServer((socket: Socket) => {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => lastChunk.set(socket, chunk));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const b: TestBroker = {
    aedes,
    server,
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: [],
    connects: [],
    online: new Set(),
    leftWithDisconnect: new Map(),
    leftAtMs: new Map(),
  };
  aedes.on('client', (client) => {
    b.connects.push(client.id);
    b.online.add(client.id);
  });
  aedes.on('clientDisconnect', (client) => {
    b.online.delete(client.id);
    const tail = lastChunk.get(client.conn);
    b.leftWithDisconnect.set(
      client.id,
      tail !== undefined && tail.subarray(-2).equals(Buffer.from([0xe0, 0])),
    );
    b.leftAtMs.set(client.id, nowMs());
  });
  aedes.on('publish', (packet: AedesPublishPacket, client) => {
    if (client)
      b.received.push({
        clientId: client.id,
        topic: packet.topic,
        payload: Buffer.from(packet.payload),
        atMs: nowMs(),
      });
  });
  broker = b;
  return b;
}

afterEach(async () => {
  if (!broker) return;
  const { aedes, server } = broker;
  broker = undefined;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
});

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const giveUpAt = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > giveUpAt) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const tcpSockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

/** What the plan says each device publishes, in order, per device. */
function plannedPerDevice(opts: SimOptions): Map<string, unknown[]> {
  const schedule = new EventSchedule(planFleet(opts));
  const byDevice = new Map<string, unknown[]>();
  for (let e = schedule.next(); e; e = schedule.next()) {
    const list = byDevice.get(e.device.id) ?? [];
    list.push({ type: e.type, ...e.data });
    byDevice.set(e.device.id, list);
  }
  return byDevice;
}

function receivedPerDevice(
  received: readonly Received[],
  parse: (b: Buffer) => unknown,
): Map<string, unknown[]> {
  const byDevice = new Map<string, unknown[]>();
  for (const r of received) {
    const [, id, , type] = r.topic.split('/');
    expect(r.clientId).toBe(id); // client id = device id
    const { ts: _ts, ...data } = parse(r.payload) as Record<string, number>;
    const list = byDevice.get(id ?? '') ?? [];
    list.push({ type, ...data });
    byDevice.set(id ?? '', list);
  }
  return byDevice;
}

describe('firmware-sim against a real aedes', () => {
  test('JSON at QoS 0: every device connects and publishes exactly the planned events, then all disconnect', async () => {
    const b = await startBroker();
    const socketsBefore = tcpSockets();
    const opts: SimOptions = { url: b.url, devices: 20, rate: 200, durationMs: 1_000, seed: 3, lingerMs: 0 };
    const startedAt = nowMs();
    const summary = await runSim(opts);
    const endedAt = nowMs();

    expect(summary).toMatchObject({
      devices: 20,
      connected: 20,
      connectFailed: 0,
      published: { telemetry: 200, heartbeat: 0 },
      failed: 0,
      lost: 0,
      aborted: false,
    });
    expect(summary.achievedRate).toBeGreaterThan(0);
    expect(new Set(b.connects)).toEqual(new Set(Array.from({ length: 20 }, (_, i) => `dev-${i + 1}`)));

    await until(() => b.received.length === 200);
    expect(receivedPerDevice(b.received, (p) => JSON.parse(p.toString()))).toEqual(plannedPerDevice(opts));
    for (const r of b.received) {
      expect(r.topic).toMatch(/^devices\/dev-\d+\/events\/telemetry$/);
      const { ts } = JSON.parse(r.payload.toString()) as { ts: number };
      expect(ts).toBeGreaterThanOrEqual(startedAt);
      expect(ts).toBeLessThanOrEqual(endedAt);
    }

    await until(() => b.aedes.connectedClients === 0);
    expect([...b.leftWithDisconnect.values()].every(Boolean)).toBe(true);
    expect(tcpSockets()).toBe(socketsBefore);
  });

  test('CBOR at QoS 1: payloads are CBOR maps and every publish is acknowledged', async () => {
    const b = await startBroker();
    const opts: SimOptions = {
      url: b.url,
      devices: 10,
      rate: 100,
      durationMs: 1_000,
      format: 'cbor',
      qos: 1,
    };
    const summary = await runSim({ ...opts, lingerMs: 0 });
    expect(summary).toMatchObject({ connected: 10, published: { telemetry: 100 }, acked: 100, failed: 0 });
    expect(b.received).toHaveLength(100);
    for (const r of b.received) expect(r.payload[0]).toBe(0xa4);
    expect(receivedPerDevice(b.received, (p) => decode(p))).toEqual(plannedPerDevice(opts));
  });

  test('commands published to devices/{id}/commands/x reach onCommand', async () => {
    const b = await startBroker();
    // The broker answers every hot reading with a command to that device, echoing the reading's send time.
    b.aedes.on('publish', (packet, client) => {
      if (!client || !packet.topic.endsWith('/telemetry')) return;
      const { ts } = JSON.parse(packet.payload.toString()) as { ts: number };
      b.aedes.publish(
        {
          cmd: 'publish',
          topic: `devices/${client.id}/commands/inspect-device`,
          payload: Buffer.from(JSON.stringify({ ts })),
          qos: 0,
          retain: false,
          dup: false,
        },
        () => undefined,
      );
    });
    const commands: { deviceId: string; name: string; ts: number; receivedAtMs: number }[] = [];
    const summary = await runSim(
      { url: b.url, devices: 8, rate: 80, durationMs: 1_000, lingerMs: 300 },
      {
        onCommand: (deviceId, name, payload, receivedAtMs) => {
          const { ts } = JSON.parse(payload.toString()) as { ts: number };
          commands.push({ deviceId, name, ts, receivedAtMs });
        },
      },
    );
    expect(summary.published.telemetry).toBe(80);
    expect(summary.commands).toBe(80);
    expect(commands).toHaveLength(80);
    expect(new Set(commands.map((c) => c.deviceId)).size).toBe(8);
    for (const c of commands) {
      expect(c.name).toBe('inspect-device');
      expect(c.receivedAtMs).toBeGreaterThanOrEqual(c.ts);
    }
  });

  test('demo behaviours: silent devices stop, disconnect or drop; unregistered ones never connect', async () => {
    const b = await startBroker();
    const opts: SimOptions = {
      url: b.url,
      devices: 12,
      rate: 120,
      durationMs: 1_500,
      seed: 9,
      silentShare: 0.4,
      silentMode: 'mixed',
      silentAfterMs: 500,
      neverRegistered: 2,
      heartbeatMs: 500,
      lingerMs: 0,
    };
    const plan = planFleet(opts);
    const summary = await runSim(opts);

    expect(plan.neverRegistered).toHaveLength(2);
    for (const id of plan.neverRegistered) expect(b.connects).not.toContain(id);
    expect(summary).toMatchObject({
      neverRegistered: 2,
      connected: 10,
      connectFailed: 0,
      silenced: 4,
      lost: 0,
    });
    expect(summary.published.heartbeat).toBeGreaterThan(0);

    // Each device sent what its plan says, heartbeats included: silent ones nothing after their silence.
    await until(() => b.online.size === 0);
    expect(receivedPerDevice(b.received, (p) => JSON.parse(p.toString()))).toEqual(plannedPerDevice(opts));

    // Those that disconnect or drop leave while the others still publish; the rest leave at the end.
    const lastPublishAtMs = Math.max(...b.received.map((r) => r.atMs));
    const silent = plan.devices.filter((d) => plan.silent.includes(d.id));
    expect(new Set(silent.map((d) => d.silentHow))).toEqual(new Set(['stay', 'disconnect', 'drop']));
    for (const d of plan.devices.filter((d) => d.registered)) {
      const leftAtMs = b.leftAtMs.get(d.id) ?? NaN;
      if (d.silentHow === 'disconnect' || d.silentHow === 'drop') {
        expect(leftAtMs).toBeLessThan(lastPublishAtMs);
        expect(b.leftWithDisconnect.get(d.id)).toBe(d.silentHow === 'disconnect');
      } else {
        expect(leftAtMs).toBeGreaterThan(lastPublishAtMs);
        expect(b.leftWithDisconnect.get(d.id)).toBe(true);
      }
    }
  });

  test('aborting stops publishing at once and still disconnects every device', async () => {
    const b = await startBroker();
    const stop = new AbortController();
    const socketsBefore = tcpSockets();
    let summary: SimSummary | undefined;
    const run = runSim(
      { url: b.url, devices: 10, rate: 100, durationMs: Infinity },
      {
        signal: stop.signal,
        progressIntervalMs: 100,
        onProgress: (s) => s.published.telemetry > 20 && stop.abort(),
      },
    ).then((s) => (summary = s));
    await until(() => summary !== undefined, 10_000);
    await run;
    expect(summary).toMatchObject({ aborted: true, connected: 10 });
    expect(summary?.published.telemetry).toBeGreaterThan(20);
    expect(summary?.published.telemetry).toBeLessThan(200);
    await until(() => b.aedes.connectedClients === 0);
    expect(tcpSockets()).toBe(socketsBefore);
  });

  test('no broker: every device fails to connect, the run returns quickly with the reason', async () => {
    const b = await startBroker();
    const url = b.url;
    await new Promise<void>((resolve) => b.server.close(() => resolve()));
    const startedAt = Date.now();
    const summary = await runSim({ url, devices: 5, rate: 50, durationMs: 60_000 });
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    expect(summary).toMatchObject({ connected: 0, connectFailed: 5, published: { telemetry: 0 } });
    expect(summary.firstError).toMatch(/ECONNREFUSED/);
  });
});
