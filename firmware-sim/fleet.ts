import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { deviceCommandFilter, deviceEventTopic, parseDeviceCommandTopic } from '../src/shared/index.js';
import { nowMs } from './clock.js';
import { encodeTopic, publishPacket } from './packet.js';
import type { ResolvedSimOptions } from './options.js';
import type { DevicePlan, FleetPlan } from './plan.js';
import type { SimEventType } from './schedule.js';

export interface FleetHooks {
  onCommand?: (deviceId: string, name: string, payload: Buffer, receivedAtMs: number) => void;
}

/** Running counts; read them at any time for progress. */
export interface FleetCounts {
  connected: number;
  connectFailed: number;
  lost: number;
  silenced: number;
  published: Record<SimEventType, number>;
  failed: number;
  acked: number;
  inFlight: number;
  commands: number;
  firstError: string | undefined;
}

interface Link {
  readonly device: DevicePlan;
  readonly topicBytes: Readonly<Record<SimEventType, Buffer>>;
  client: MqttClient | undefined;
  /** QoS 1: the last packet id used, and the publishes still waiting for their PUBACK. */
  packetId: number;
  inFlight: number;
  everConnected: boolean;
  online: boolean;
  subscribed: boolean;
  /** Its connection is meant to end (planned silence or shutdown): a close is not a loss. */
  stopped: boolean;
}

/** Slack on top of mqtt.js's own CONNACK timeout, for a TCP connect that never completes. */
const CONNECT_GUARD_MS = 1_000;
/** How long a graceful DISCONNECT may take before the socket is destroyed. */
const CLOSE_GRACE_MS = 2_000;

/** The devices' MQTT connections: one mqtt.js client per device, client id = device id. */
export class Fleet {
  readonly counts: FleetCounts = {
    connected: 0,
    connectFailed: 0,
    lost: 0,
    silenced: 0,
    published: { telemetry: 0, heartbeat: 0 },
    failed: 0,
    acked: 0,
    inFlight: 0,
    commands: 0,
    firstError: undefined,
  };
  private readonly links: readonly (Link | undefined)[];

  constructor(
    plan: FleetPlan,
    private readonly o: ResolvedSimOptions,
    private readonly hooks: FleetHooks,
  ) {
    this.links = plan.devices.map((device): Link | undefined => {
      if (!device.registered) return undefined;
      return {
        device,
        topicBytes: {
          telemetry: encodeTopic(deviceEventTopic(device.id, 'telemetry')),
          heartbeat: encodeTopic(deviceEventTopic(device.id, 'heartbeat')),
        },
        client: undefined,
        packetId: 0,
        inFlight: 0,
        everConnected: false,
        online: false,
        subscribed: false,
        stopped: false,
      };
    });
  }

  /** Connects every registered device, `connectConcurrency` at a time; resolves when each got through or gave up. */
  async connect(signal?: AbortSignal): Promise<void> {
    const pending = this.links.filter((l): l is Link => l !== undefined);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < pending.length && !signal?.aborted) {
        const link = pending[next++];
        if (link) await this.connectOne(link);
      }
    };
    const workers = Math.min(this.o.connectConcurrency, pending.length);
    await Promise.all(Array.from({ length: workers }, worker));
  }

  /** Publishes one event from a device; counted as failed when the device is not connected right now. */
  publish(device: DevicePlan, type: SimEventType, payload: Buffer): void {
    const link = this.links[device.index];
    const client = link?.client;
    if (!link || !client?.connected || link.stopped) {
      this.counts.failed++;
      return;
    }
    // One whole packet in one write, beside mqtt.js (which also writes whole packets only, so the two never
    // interleave). It takes a third of the CPU per event at QoS 0 and a quarter at QoS 1 that mqtt.js's publish
    // takes, so the simulator is not what limits a benchmark.
    if (this.o.qos === 1) {
      // Cycling through 1–65535 keeps ids unique among the few thousand a device can have in flight. mqtt.js
      // allocates its own ids only for (re)subscribing, which is done before this device publishes.
      link.packetId = (link.packetId % 65_535) + 1;
      link.inFlight++;
      this.counts.inFlight++;
      client.stream.write(publishPacket(link.topicBytes[type], payload, link.packetId));
    } else {
      client.stream.write(publishPacket(link.topicBytes[type], payload));
    }
    this.counts.published[type]++;
  }

  /** The device's planned silence begins: it stops publishing and, by its plan, disconnects or drops. */
  silence(device: DevicePlan): void {
    const link = this.links[device.index];
    if (!link || link.stopped) return;
    link.stopped = true;
    this.counts.silenced++;
    if (device.silentHow === 'stay') return;
    // `end(true)` destroys the socket without DISCONNECT, so the broker sees a lost connection.
    link.client?.end(device.silentHow === 'drop');
  }

  /** Disconnects every device (DISCONNECT, then the socket is closed) and waits until all sockets are closed. */
  async close(): Promise<void> {
    await Promise.all(
      this.links.map(async (link) => {
        if (!link?.client) return;
        link.stopped = true;
        await closeClient(link.client);
      }),
    );
  }

  private connectOne(link: Link): Promise<void> {
    const { id } = link.device;
    const options: IClientOptions = {
      clientId: id,
      clean: true,
      protocolVersion: 4,
      keepalive: this.o.keepaliveS,
      reconnectPeriod: this.o.reconnectMs,
      connectTimeout: this.o.connectTimeoutMs,
      queueQoSZero: false,
      resubscribe: true,
    };
    const credentials = this.o.credentials?.(id);
    if (credentials) {
      options.username = credentials.username;
      options.password = credentials.password;
    }
    const client = connect(this.o.url, options);
    link.client = client;

    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(guard);
        if (!ok) this.counts.connectFailed++;
        resolve();
      };
      const guard = setTimeout(() => settle(false), this.o.connectTimeoutMs + CONNECT_GUARD_MS);

      client.on('connect', () => {
        // Device packets are small and latency is measured on them: do not let Nagle hold them back.
        (client.stream as Partial<Socket>).setNoDelay?.(true);
        link.online = true;
        if (!link.everConnected) {
          link.everConnected = true;
          this.counts.connected++;
          if (settled) this.counts.connectFailed--;
        }
        if (link.subscribed) return; // mqtt.js resubscribes by itself after a reconnect
        client.subscribe(deviceCommandFilter(id), { qos: this.o.qos }, (error) => {
          if (error) {
            this.noteError(id, error);
            settle(false);
            return;
          }
          link.subscribed = true;
          settle(true);
        });
      });
      client.on('message', (topic, payload) => {
        const receivedAtMs = nowMs();
        this.counts.commands++;
        try {
          this.hooks.onCommand?.(id, parseDeviceCommandTopic(topic, id) ?? topic, payload, receivedAtMs);
        } catch (error) {
          this.noteError('onCommand', error);
        }
      });
      client.on('error', (error) => {
        this.noteError(id, error);
        settle(false);
      });
      client.on('packetreceive', (packet) => {
        // mqtt.js publishes nothing itself here, so every PUBACK answers one of ours; it ignores them.
        if (packet.cmd !== 'puback' || link.inFlight === 0) return;
        link.inFlight--;
        this.counts.inFlight--;
        this.counts.acked++;
      });
      client.on('close', () => {
        if (link.online && !link.stopped) this.counts.lost++;
        link.online = false;
        // With a clean session nothing is resent after a reconnect: what was not acknowledged is lost.
        this.counts.failed += link.inFlight;
        this.counts.inFlight -= link.inFlight;
        link.inFlight = 0;
        settle(false);
      });
    });
  }

  private noteError(where: string, error: unknown): void {
    this.counts.firstError ??= `${where}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * Ends one client and resolves once its socket is closed: a DISCONNECT when connected, otherwise the socket is
 * destroyed (a DISCONNECT would wait in mqtt.js's offline queue for a connection that never comes).
 */
function closeClient(client: MqttClient): Promise<void> {
  return new Promise<void>((resolve) => {
    const stream = client.stream;
    if ((stream as Partial<Duplex>).closed === true) {
      client.end(true);
      resolve();
      return;
    }
    const grace = setTimeout(() => stream.destroy(), CLOSE_GRACE_MS);
    stream.once('close', () => {
      clearTimeout(grace);
      resolve();
    });
    client.end(!client.connected);
  });
}
