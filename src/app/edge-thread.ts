import { parentPort, workerData } from 'node:worker_threads';
import { pino, type Logger } from 'pino';
import {
  DeviceGuard,
  startBroker,
  type Broker,
  type CredentialCheck,
  type GuardCounters,
} from '../broker/index.js';
import { decodePayload, type DeadLetter } from '../ingest/index.js';
import { crc32 } from 'node:zlib';
import { DEAD_LETTER_TOPIC, DEVICE_EVENT_SCHEME, parseDeviceTopic, VigilError } from '../shared/index.js';
import { Crossing } from '../threads/index.js';
import {
  decodeRecord,
  encodeRecord,
  ToDecision,
  ToEdge,
  type DecisionRecord,
  type EdgeControl,
  type EdgeRecord,
  type EdgeThreadData,
  type SessionMethod,
  asPacket,
} from './edge-wire.js';
import { EdgeSessions } from './edge-sessions.js';
import { guardOptions } from './guard-options.js';

/** How much of a refused payload the dead letter carries (as `Ingest` does). */
const DEAD_LETTER_PAYLOAD_BYTES = 1024;

/**
 * The edge thread (docs/architecture.md, "Threads"): aedes with the guard (TLS, authentication, ACL, rate limits)
 * and the decoding of device events. Decoded events cross to the decision thread in batches; a QoS 1 publish is
 * acknowledged when the decision thread reports its record synced. Credentials are checked by the decision thread,
 * which holds the store.
 */
class EdgeThread {
  private readonly crossing: Crossing;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private readonly verifying = new Map<
    number,
    { resolve: (v: VerifyVerdict) => void; reject: (e: Error) => void }
  >();
  private readonly asking = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly sessions = new EdgeSessions(
    (method, args) => this.ask(method, args),
    (method, args) => this.send([ToDecision.Session, null, method, args]),
  );
  private nextId = 1;
  /** The decision thread's queues are half full: QoS 0 publishers wait too (see `heldBack` in device-edge.ts). */
  private congested = false;
  broker: Broker | undefined;
  guard: DeviceGuard | undefined;

  constructor(
    private readonly port: NonNullable<typeof parentPort>,
    private readonly data: EdgeThreadData,
    readonly logger: Logger,
  ) {
    this.crossing = new Crossing(port);
    this.crossing.onRecords((batch, start, end) =>
      this.receive(decodeRecord<DecisionRecord>(batch, start, end)),
    );
  }

  send(record: EdgeRecord): void {
    this.crossing.send(encodeRecord(record));
  }

  async start(): Promise<void> {
    const { config } = this.data;
    const { mqtt } = config;
    this.guard = new DeviceGuard(guardOptions(mqtt, this.credentials(), this.logger, this.counters()));
    const tls = this.data.tls;
    this.broker = await startBroker({
      host: mqtt.host,
      port: mqtt.port,
      maxPacketBytes: mqtt.maxPacketBytes,
      logger: this.logger,
      guard: this.guard,
      tls: tls && {
        cert: Buffer.from(tls.cert),
        key: Buffer.from(tls.key),
        ca: tls.ca && Buffer.from(tls.ca),
        crl: tls.crl && Buffer.from(tls.crl),
        crlFile: tls.crlFile,
        host: mqtt.tls.host ?? mqtt.host,
        port: mqtt.tls.port,
      },
      sessions: this.sessions,
      hooks: {
        onPublish: (client, topic, payload, qos, packet) =>
          this.publish(client.id, topic, payload, qos, packet),
        onConnected: (client) => this.send([ToDecision.Connected, client.id, this.connected()]),
        onSubscribed: (client) => this.send([ToDecision.Subscribed, client.id]),
        onDisconnected: (client, reason) =>
          this.send([ToDecision.Disconnected, client.id, reason, this.connected()]),
      },
    });
  }

  private connected(): number {
    return this.broker?.connectedCount ?? 0;
  }

  /** Decodes a device event; a refused one is dead-lettered here and acknowledged, an accepted one crosses. */
  private publish(
    clientId: string,
    topic: string,
    payload: Buffer,
    qos: 0 | 1 | 2,
    packet: { dup: boolean; messageId: number | undefined; connection: number },
  ): Promise<void> | void {
    const parsed = parseDeviceTopic(topic);
    if (!parsed.ok) {
      const detail = `topic ${JSON.stringify(topic)} is not ${DEVICE_EVENT_SCHEME}`;
      return this.refuse({ reason: 'topic', detail, topic, clientId, at: Date.now() }, payload);
    }
    const decoded = decodePayload(payload, this.data.config.ingest.maxPayloadBytes);
    if (!decoded.ok) {
      const { reason, detail } = decoded;
      const letter = { reason, detail, topic, clientId, deviceId: parsed.deviceId, at: Date.now() };
      return this.refuse(letter, payload);
    }
    const id = this.nextId++;
    const resendable = qos > 0 && packet.messageId !== undefined;
    const held = resendable || this.congested;
    this.send([
      ToDecision.Event,
      id,
      qos,
      parsed.deviceId,
      parsed.type,
      decoded.data,
      decoded.deviceAt ?? null,
      clientId,
      packet.connection,
      packet.messageId ?? null,
      packet.dup,
      // The hash `DurableInputs.hashPublish` makes.
      resendable ? crc32(payload, crc32(topic)) : null,
      held,
    ]);
    if (!held) return;
    return new Promise<void>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  private refuse(record: DeadLetter, payload: Buffer): void {
    if (payload.length > 0)
      record.payloadBase64 = payload.subarray(0, DEAD_LETTER_PAYLOAD_BYTES).toString('base64');
    this.send([ToDecision.Refused, record.reason]);
    this.logger.warn(
      { reason: record.reason, detail: record.detail, topic: record.topic, clientId: record.clientId },
      'input refused',
    );
    this.broker?.publish(DEAD_LETTER_TOPIC, JSON.stringify(record)).catch((err: unknown) => {
      this.logger.warn({ err }, 'dead letter not published');
    });
  }

  /** The guard's counters, counted by the decision thread's metrics. */
  private counters(): GuardCounters {
    const count =
      (counter: keyof GuardCounters) =>
      (label?: string | number): void =>
        this.send([ToDecision.Guard, counter, label ?? null]);
    return {
      authRefused: count('authRefused'),
      aclRefused: count('aclRefused'),
      limitHit: count('limitHit'),
      protocolError: count('protocolError'),
      openConnections: count('openConnections'),
      pendingConnections: count('pendingConnections'),
    };
  }

  /** A persistence call of aedes, answered by the decision thread's `MqttSessions`. */
  private ask(method: SessionMethod, args: unknown[]): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const id = this.nextId++;
      this.asking.set(id, { resolve, reject });
      this.send([ToDecision.Session, id, method, args]);
    });
  }

  private answered(requestId: number, ok: boolean, value: unknown): void {
    const asked = this.asking.get(requestId);
    this.asking.delete(requestId);
    // Copied now: the batch goes back to the decision thread once read, and with it any payload bytes in `value`.
    if (ok) asked?.resolve(Array.isArray(value) ? value.map(asPacket) : asPacket(value));
    else asked?.reject(new Error(typeof value === 'string' ? value : 'the session store failed'));
  }

  /** Credentials are in the store, on the decision thread: asked there. */
  private credentials(): CredentialCheck {
    return {
      verify: (deviceId, secret) =>
        new Promise<VerifyVerdict>((resolve, reject) => {
          const id = this.nextId++;
          this.verifying.set(id, { resolve, reject });
          this.send([ToDecision.Verify, id, deviceId, secret]);
        }),
    };
  }

  private receive(record: DecisionRecord): void {
    switch (record[0]) {
      case ToEdge.Recorded:
        for (const id of record[1]) this.settle(id)?.resolve();
        return;
      case ToEdge.Failed:
        for (const id of record[1]) this.settle(id)?.reject(new Error('the event could not be recorded'));
        return;
      case ToEdge.Send: {
        const [, requestId, clientId, topic, payload] = record;
        void this.broker
          ?.sendTo(clientId, topic, Buffer.from(payload))
          .then((outcome) => this.send([ToDecision.Sent, requestId, outcome]));
        return;
      }
      case ToEdge.Publish: {
        const [, topic, payload, qos, retain, except] = record;
        const opts = { qos, retain, ...(except !== null ? { except } : {}) };
        this.broker?.publish(topic, Buffer.from(payload), opts).catch((err: unknown) => {
          this.logger.warn({ err, topic }, 'publish from the decision thread failed');
        });
        return;
      }
      case ToEdge.Verified: {
        const [, requestId, verdict, error] = record;
        const asked = this.verifying.get(requestId);
        this.verifying.delete(requestId);
        if (verdict !== null) asked?.resolve(verdict);
        else asked?.reject(new Error(error ?? 'credentials not read'));
        return;
      }
      case ToEdge.Disconnect:
        this.guard?.disconnect(record[1]);
        return;
      case ToEdge.Congested:
        this.congested = record[1];
        return;
      case ToEdge.SessionReply:
        return this.answered(record[1], record[2], record[3]);
      case ToEdge.SessionExpired:
        return this.sessions.expired(record[1]);
    }
  }

  private settle(id: number): { resolve: () => void; reject: (err: Error) => void } | undefined {
    const waiting = this.waiting.get(id);
    this.waiting.delete(id);
    return waiting;
  }

  async stop(): Promise<void> {
    await this.broker?.close();
    this.crossing.flush();
  }
}

type VerifyVerdict = 'ok' | 'unknown-device' | 'wrong-secret';

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('the edge thread runs as a worker thread');
  const data = workerData as EdgeThreadData;
  const logger = pino({ level: data.config.log.level, base: { thread: 'edge' } });
  const edge = new EdgeThread(port, data, logger);
  const post = (message: EdgeControl): void => port.postMessage(message);
  port.on('message', (message: { kind?: string }) => {
    if (message.kind !== 'stop') return;
    edge.stop().then(
      () => post({ kind: 'stopped' }),
      (err: unknown) => {
        logger.error({ err }, 'edge thread did not stop cleanly');
        post({ kind: 'stopped' });
      },
    );
  });
  try {
    await edge.start();
  } catch (err) {
    const e = err as Error;
    const hint = err instanceof VigilError ? err.hint : undefined;
    post({ kind: 'failed', message: e.message, code: (err as VigilError).code, hint });
    return;
  }
  const broker = edge.broker as Broker;
  post({ kind: 'listening', address: broker.address, tls: broker.tlsAddress });
}

// Not awaited at the top level: the single executable runs this module as CommonJS (build/bundle.ts). A failure
// ends the thread as an uncaught exception does.
main().catch((err: unknown) => {
  process.nextTick(() => {
    throw err;
  });
});
