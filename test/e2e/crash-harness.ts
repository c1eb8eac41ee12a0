import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import type { ReplayOutput } from '../../src/runtime/index.js';
import type { Action } from '../../src/shared/index.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

/** An action as the cloud received it. */
export interface Received {
  action: Action;
  /** Wall-clock time of arrival at the cloud. */
  at: number;
}

/** A second aedes on loopback standing in for the cloud broker; it keeps every action published to it. */
export interface Cloud {
  readonly url: string;
  readonly port: number;
  readonly actions: Received[];
  stop(): Promise<void>;
}

export async function startCloud(port = 0): Promise<Cloud> {
  const aedes = await Aedes.createBroker();
  const actions: Received[] = [];
  await new Promise<void>((resolve) =>
    aedes.subscribe(
      'vigil/+/actions',
      (packet, done) => {
        const at = Date.now();
        const body = JSON.parse(Buffer.from(packet.payload).toString()) as Action | Action[];
        for (const action of Array.isArray(body) ? body : [body]) actions.push({ action, at });
        done();
      },
      resolve,
    ),
  );
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${bound}`,
    port: bound,
    actions,
    stop: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await closed;
    },
  };
}

/** Writes rule files into `dir` (created). */
export async function writeRules(dir: string, files: Record<string, string>): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

/** Polls `predicate` until it holds, or fails after `timeoutMs` saying what it waited for. */
export async function waitUntil(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Publishes at QoS 1 with a packet id and DUP flag of our choosing, as a device's MQTT stack would when it
 * resends, by writing the PUBLISH packet on the client's socket; resolves when the PUBACK for that id comes.
 */
export function rawPublish(
  client: MqttClient,
  topic: string,
  payload: string,
  messageId: number,
  dup: boolean,
  timeoutMs = 5_000,
): Promise<void> {
  const topicBytes = Buffer.from(topic);
  const body = Buffer.from(payload);
  const remaining = 2 + topicBytes.length + 2 + body.length;
  const lengthBytes: number[] = [];
  let n = remaining;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    lengthBytes.push(byte);
  } while (n > 0);
  const header = Buffer.from([0x30 | (dup ? 0x08 : 0) | (1 << 1), ...lengthBytes]);
  const ids = Buffer.alloc(2);
  ids.writeUInt16BE(topicBytes.length);
  const packetId = Buffer.alloc(2);
  packetId.writeUInt16BE(messageId);
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.removeListener('packetreceive', onPacket);
      reject(new Error(`no PUBACK for packet ${messageId} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onPacket = (packet: { cmd: string; messageId?: number }) => {
      if (packet.cmd !== 'puback' || packet.messageId !== messageId) return;
      clearTimeout(timer);
      client.removeListener('packetreceive', onPacket);
      resolve();
    };
    client.on('packetreceive', onPacket);
    client.stream.write(Buffer.concat([header, ids, topicBytes, packetId, body]));
  });
}

/** A small seeded generator (mulberry32), so that a failing run can be repeated with its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** `vigil run` arguments of a crash test's gateway: anonymous devices, its rules, data dir and cloud. */
export function gatewayArgs(opts: {
  port: number;
  data: string;
  rules: string;
  upstream: string;
  config?: string;
}): string[] {
  return [
    '--allow-anonymous',
    ...(opts.config !== undefined ? ['--config', opts.config] : []),
    '--mqtt-port',
    String(opts.port),
    '--http-port',
    '0',
    '--data',
    opts.data,
    '--rules',
    opts.rules,
    '--upstream',
    opts.upstream,
    '--gateway-id',
    'gw1',
  ];
}

/** What a crash test runs in (see `crashScene`). */
export interface CrashScene {
  readonly cloud: Cloud;
  /** The `vigil run` arguments of a gateway on port `port` (0: any) in this scene. */
  readonly args: (port: number) => string[];
  /** The scene's temp dir. */
  readonly dir: string;
  /** The gateway's data dir (`--data`): its journal is in `journal/` below it. */
  readonly data: string;
}

/**
 * What a crash test runs in: a temp dir with its rules (and a config that checkpoints every
 * `checkpointInterval`, when given) and a cloud broker; `args(port)` are the `vigil run` arguments of a gateway
 * on them. What it starts is handed to `onCleanup`, to be undone in reverse order. With `VIGIL_CRASH_KEEP` set
 * the temp dir is kept (and its path printed), to look into after the run.
 */
export async function crashScene(opts: {
  rules: Record<string, string>;
  checkpointInterval?: string;
  onCleanup: (cleanup: () => Promise<unknown>) => void;
}): Promise<CrashScene> {
  const dir = await tempDir();
  if (process.env.VIGIL_CRASH_KEEP === undefined) opts.onCleanup(() => dir.remove());
  else console.log(`crash scene kept in ${dir.path}`);
  const rules = await writeRules(join(dir.path, 'rules'), opts.rules);
  let config: string | undefined;
  if (opts.checkpointInterval !== undefined) {
    config = join(dir.path, 'vigil.yaml');
    await writeFile(config, `durability:\n  checkpointInterval: ${opts.checkpointInterval}\n`);
  }
  const cloud = await startCloud();
  opts.onCleanup(() => cloud.stop());
  const data = join(dir.path, 'data');
  return {
    cloud,
    dir: dir.path,
    data,
    args: (port) =>
      gatewayArgs({ port, data, rules, upstream: cloud.url, ...(config !== undefined ? { config } : {}) }),
  };
}

/** The file `saveCloudActionIds` writes, in the scene's temp dir. */
export const CLOUD_ACTION_IDS_FILE = 'cloud-action-ids.txt';

/**
 * The ids of every action the scene's cloud received, each once, and the gateway's data dir: what a check
 * compares with the actions `vigil replay --journal DATA_DIR` decides from the journal. The ids are also saved,
 * sorted, one per line, to `CLOUD_ACTION_IDS_FILE` in the scene's temp dir (`file`).
 */
export async function saveCloudActionIds(
  scene: CrashScene,
): Promise<{ ids: ReadonlySet<string>; dataDir: string; file: string }> {
  const ids = new Set(scene.cloud.actions.map((r) => r.action.id));
  const file = join(scene.dir, CLOUD_ACTION_IDS_FILE);
  await writeFile(
    file,
    [...ids]
      .sort()
      .map((id) => `${id}\n`)
      .join(''),
  );
  return { ids, dataDir: scene.data, file };
}

/**
 * What the built `vigil replay --journal DATA_DIR` decides from the journal a stopped gateway retained: the ids of
 * the actions it sends (not those the policy suppresses), each once, and what it printed on stderr.
 */
export async function replayedActionIds(
  dataDir: string,
): Promise<{ ids: ReadonlySet<string>; code: number | null; stderr: string }> {
  const result = await runCli(['replay', '--journal', dataDir]);
  const ids = new Set<string>();
  for (const line of result.stdout.split('\n')) {
    if (line.trim() === '') continue;
    const out = JSON.parse(line) as ReplayOutput;
    if (out.suppressed === undefined) ids.add(out.id);
  }
  return { ids, code: result.code, stderr: result.stderr };
}

/**
 * A device that lives through gateway crashes: it reconnects (every 100 ms) and mqtt.js sends an unacknowledged
 * QoS 1 publish again once reconnected; errors swallowed.
 */
export async function connectReconnectingDevice(port: number, clientId: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId,
    reconnectPeriod: 100,
    connectTimeout: 2_000,
  });
  client.on('error', () => undefined);
  return client;
}

/**
 * The business system: a client of the cloud broker (which stays up all along) that publishes to gateway
 * `gw1`. `online` settles when the gateway announces itself: its session exists on the broker from then on,
 * and the broker keeps what is published for it while it is down.
 */
export async function connectBusiness(cloud: Cloud): Promise<{ client: MqttClient; online: Promise<void> }> {
  const client = await mqtt.connectAsync(cloud.url, { clientId: 'crm', reconnectPeriod: 0 });
  const online = new Promise<void>((resolve) => {
    client.on('message', (_topic, payload) => {
      if (payload.toString() === 'online') resolve();
    });
  });
  await client.subscribeAsync('vigil/gw1/status', { qos: 1 });
  return { client, online };
}

/** A device connection that a gateway crash may cut: no reconnects, errors swallowed. */
export async function connectDevice(port: number, clientId: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0 });
  client.on('error', () => undefined);
  return client;
}

/** One scenario that sends every reading to the cloud with its number `n`: each input has a visible effect. */
export const READING_RULES = {
  'reading.yaml': `id: reading
description: Every reading goes to the cloud, with its number.
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
