import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Broker, GuardCounters, PublishOptions, SendOutcome } from '../broker/index.js';
import { CredentialStore } from '../credentials/index.js';
import { cloudEventMetrics, Ingest, type PublishMeta } from '../ingest/index.js';
import { ConfigError, DEAD_LETTER_TOPIC, upstreamTopics, VigilError, type Event } from '../shared/index.js';
import { Crossing } from '../threads/index.js';
import type { DecisionModule } from './decision.js';
import {
  closeAndThrow,
  commandsWithCloud,
  openSessions,
  readCredentialsAhead,
  receiveCloudEvent,
  reportLimits,
  type DeviceEdge,
} from './device-edge.js';
import {
  decodeRecord,
  encodeRecord,
  ToDecision,
  ToEdge,
  type DecisionRecord,
  type EdgeControl,
  type EdgeRecord,
  type EdgeThreadData,
  type EventRecord,
  type SessionMethod,
} from './edge-wire.js';
import type { Foundation } from './foundation.js';
import { serveSessions } from './session-service.js';
import type { UplinkModule } from './uplink.js';

/** How long a stop waits for the edge thread to close its connections before it is terminated. */
const STOP_WAIT_MS = 5_000;

/**
 * `threads: 2`: the device edge on a worker thread of its own (src/app/edge-thread.ts), the decision loop, the
 * store and everything else on this one (docs/architecture.md, "Threads"). Decoded device events cross in
 * batches and enter the decision loop's entrance as they do with one thread; a QoS 1 publish is acknowledged by
 * the edge thread once this one reports its record synced. Commands to devices and the credentials a CONNECT
 * needs cross the same way.
 */
export async function startThreadedEdge(
  base: Foundation,
  decision: DecisionModule,
  uplink: UplinkModule,
): Promise<DeviceEdge> {
  const { config, logger, metrics, store } = base;
  // The sessions live here, in LevelDB; the edge thread's aedes asks for them across (`EdgeSessions`).
  const expiredTo: { edge?: EdgeLink } = {};
  const sessions = await openSessions(base, (clientId) => expiredTo.edge?.expired(clientId));
  const edge = new EdgeLink(base, decision, serveSessions(sessions));
  expiredTo.edge = edge;
  const ingest = new Ingest({
    clock: () => decision.clock.now(),
    logger,
    maxPayloadBytes: config.ingest.maxPayloadBytes,
    cloudEvents: {
      maxBytes: config.ingest.cloudEvents.maxBytes,
      ...config.ingest.cloudEvents.rate,
      now: () => performance.now(),
    },
    deadLetter: (record) => void edge.broker.publish(DEAD_LETTER_TOPIC, JSON.stringify(record)),
    metrics: {
      accepted: (type, source) => metrics.countEventIn(type, source ?? 'device'),
      rejected: (reason) => metrics.ingestRejects.inc({ reason }),
      ...cloudEventMetrics(metrics.registry, {
        maxBytes: config.ingest.cloudEvents.maxBytes,
        ...config.ingest.cloudEvents.rate,
      }),
    },
    ordered: decision.entrance,
  });
  uplink.route(upstreamTopics(base.gatewayId).events, (payload, message) =>
    receiveCloudEvent(decision.durable, ingest, payload, message),
  );
  const credentials = new CredentialStore(store.sublevels.creds);
  readCredentialsAhead(credentials, decision.durable, base.logger);
  reportLimits(base);
  const { commands, reports } = commandsWithCloud(base, decision, uplink, credentials, () => edge.broker);
  edge.on({
    connected: (clientId) => {
      ingest.handleBrokerEvent(clientId, 'connected');
      commands.deviceReady(clientId);
    },
    subscribed: (clientId) => commands.deviceReady(clientId),
    disconnected: (clientId, reason) => ingest.handleBrokerEvent(clientId, 'disconnected', { reason }),
    verify: (deviceId, secret) => credentials.verify(deviceId, secret),
  });
  await edge.start().catch(closeAndThrow(sessions));
  decision.onSent(({ action, to }, replay) => {
    if (to.includes('device')) commands.decided(action, replay);
  });
  decision.recovered.then(
    () => commands.sweepEvery(30_000),
    () => undefined,
  );
  return {
    broker: edge.broker,
    guard: { disconnect: (deviceId) => edge.disconnect(deviceId) },
    credentials,
    async stop() {
      await edge.stop();
      credentials.forgetReadAhead();
      await sessions.close();
      await ingest.drain();
      await commands.stop();
      reports.stop();
    },
  };
}

interface EdgeHandlers {
  connected(clientId: string): void;
  subscribed(clientId: string): void;
  disconnected(clientId: string, reason: string): void;
  verify(deviceId: string, secret: Buffer): Promise<'ok' | 'unknown-device' | 'wrong-secret'>;
}

/** This thread's side of the edge thread: the worker, the crossing, and a `Broker` that forwards to it. */
class EdgeLink {
  private readonly worker: Worker;
  private readonly crossing: Crossing;
  private handlers: EdgeHandlers | undefined;
  private readonly sends = new Map<number, (outcome: SendOutcome) => void>();
  private nextSend = 1;
  private recorded: number[] = [];
  private failed: number[] = [];
  private acking = false;
  private connectedCount = 0;
  private congested = false;
  private listening: Extract<EdgeControl, { kind: 'listening' }> | undefined;
  private stopped: Promise<void> | undefined;
  private exited = false;
  private broken = false;
  readonly broker: Broker;

  constructor(
    private readonly base: Foundation,
    private readonly decision: DecisionModule,
    private readonly sessions: (method: SessionMethod, args: unknown[]) => Promise<unknown>,
  ) {
    const data: EdgeThreadData = { config: base.config, tls: base.files.mqttTls };
    const { entry, execArgv } = edgeThreadEntry();
    // Named so that the thread can be told apart (its CPU in /proc/PID/task/*/comm).
    this.worker = new Worker(entry, {
      name: 'vigil-edge',
      workerData: data,
      ...(execArgv ? { execArgv } : {}),
    });
    this.worker.once('exit', (code) => {
      this.exited = true;
      if (this.stopped === undefined && this.listening !== undefined)
        this.fail(new Error(`the edge thread ended (exit code ${code})`));
    });
    this.crossing = new Crossing(this.worker);
    this.crossing.onRecords((batch, start, end) => this.receive(decodeRecord<EdgeRecord>(batch, start, end)));
    this.broker = this.brokerFacade();
  }

  on(handlers: EdgeHandlers): void {
    this.handlers = handlers;
  }

  /** Resolves once the edge thread listens; rejects as the broker's start failed there. */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.worker.once('error', onError);
      const onMessage = (message: EdgeControl) => {
        if (message.kind === 'listening') {
          this.listening = message;
          this.worker.off('message', onMessage);
          this.worker.off('error', onError);
          this.worker.on('error', (err: Error) => this.fail(err));
          resolve();
        } else if (message.kind === 'failed') {
          this.worker.off('message', onMessage);
          void this.worker.terminate();
          reject(
            new VigilError((message.code ?? 'VIGIL_CONFIG') as never, message.message, {
              hint: message.hint,
            }),
          );
        }
      };
      this.worker.on('message', onMessage);
    });
  }

  /**
   * The edge thread failed after it started: no device is served any more. Thrown as an uncaught exception, which
   * `vigil run` logs and exits on, so that the supervisor restarts the gateway (it recovers from its journal).
   */
  private fail(err: Error): void {
    if (this.broken) return;
    this.broken = true;
    setImmediate(() => {
      throw err;
    });
  }

  /** The session of `clientId` expired here: the edge thread forgets its subscriptions. */
  expired(clientId: string): void {
    this.send([ToEdge.SessionExpired, clientId]);
  }

  /** A persistence call of the edge thread's aedes; answered unless `requestId` is null. */
  private session(requestId: number | null, method: SessionMethod, args: unknown[]): void {
    const answer = this.sessions(method, args);
    if (requestId === null) {
      answer.catch((err: unknown) => this.base.logger.warn({ err, method }, 'mqtt session call failed'));
      return;
    }
    answer.then(
      (value) => this.send([ToEdge.SessionReply, requestId, true, value]),
      (err: unknown) => this.send([ToEdge.SessionReply, requestId, false, (err as Error).message]),
    );
  }

  disconnect(deviceId: string): boolean {
    this.send([ToEdge.Disconnect, deviceId]);
    return true;
  }

  stop(): Promise<void> {
    return (this.stopped ??= new Promise<void>((resolve) => {
      if (this.exited) return resolve();
      const timer = setTimeout(() => void this.worker.terminate(), STOP_WAIT_MS);
      const done = () => {
        clearTimeout(timer);
        this.crossing.close();
        for (const settle of this.sends.values()) settle('lost');
        this.sends.clear();
        void this.worker.terminate().then(() => resolve());
      };
      this.worker.on('message', (message: EdgeControl) => {
        if (message.kind === 'stopped') done();
      });
      this.worker.once('exit', () => resolve());
      this.crossing.flush();
      this.worker.postMessage({ kind: 'stop' } satisfies EdgeControl);
    }));
  }

  private send(record: DecisionRecord): void {
    this.crossing.send(encodeRecord(record));
  }

  private receive(record: EdgeRecord): void {
    const handlers = this.handlers;
    if (handlers === undefined) return;
    switch (record[0]) {
      case ToDecision.Event:
        return this.event(record);
      case ToDecision.Connected:
        this.connected(record[2]);
        return handlers.connected(record[1]);
      case ToDecision.Disconnected:
        this.connected(record[3]);
        return handlers.disconnected(record[1], record[2]);
      case ToDecision.Subscribed:
        return handlers.subscribed(record[1]);
      case ToDecision.Verify: {
        const [, requestId, deviceId, secret] = record;
        handlers.verify(deviceId, Buffer.from(secret)).then(
          (verdict) => this.send([ToEdge.Verified, requestId, verdict, null]),
          (err: unknown) => this.send([ToEdge.Verified, requestId, null, (err as Error).message]),
        );
        return;
      }
      case ToDecision.Sent: {
        const settle = this.sends.get(record[1]);
        this.sends.delete(record[1]);
        return settle?.(record[2]);
      }
      case ToDecision.Refused:
        this.base.metrics.ingestRejects.inc({ reason: record[1] });
        return;
      case ToDecision.Guard:
        return this.guardCounter(record[1], record[2]);
      case ToDecision.Session:
        return this.session(record[1], record[2], record[3]);
    }
  }

  private guardCounter(counter: keyof GuardCounters, label: string | number | null): void {
    const { metrics } = this.base;
    const name = String(label);
    if (counter === 'authRefused') metrics.authRefusals.inc({ reason: name });
    else if (counter === 'aclRefused') metrics.aclRefusals.inc({ action: name });
    else if (counter === 'limitHit') metrics.limitHits.inc({ limit: name });
    else if (counter === 'protocolError') metrics.protocolErrors.inc();
    else if (counter === 'openConnections') metrics.mqttConnections.set(Number(label));
    else metrics.mqttPendingConnections.set(Number(label));
  }

  /**
   * Tells the edge thread when the queues fill (half full: the entrance, the record file) or the journal lags, and
   * when that is over: meanwhile QoS 0 publishers wait for their records too, as with one thread (`heldBack`).
   */
  private watchCongestion(): void {
    const congested = this.decision.congested || this.decision.durable.congested;
    if (congested === this.congested) return;
    this.congested = congested;
    this.send([ToEdge.Congested, congested]);
  }

  private connected(count: number): void {
    this.connectedCount = count;
    this.base.metrics.devicesConnected.set(count);
  }

  /** A decoded device event: into the entrance, stamped with its arrival here; QoS 1 acknowledged once recorded. */
  private event(record: EventRecord): void {
    const [, id, qos, actor, type, data, deviceAt, clientId, connection, messageId, dup, hash, held] = record;
    const ev: Event = { actor, type, at: this.decision.clock.now(), data, source: 'device' };
    if (deviceAt !== null) ev.deviceAt = deviceAt;
    let meta: PublishMeta = { qos };
    if (messageId !== null && hash !== null) {
      const source = { clientId, connection, messageId, hash };
      const resend = this.decision.durable.resent(source, dup);
      if (resend !== undefined) return this.acknowledgeOnce(id, resend);
      meta = { qos, source };
    }
    this.base.metrics.countEventIn(type, 'device');
    const accepted = this.decision.entrance.push(ev, meta);
    if (hash !== null) this.acknowledgeOnce(id, accepted);
    else if (held)
      this.acknowledgeOnce(
        id,
        Promise.resolve(accepted).then(() => this.decision.relieved()),
      );
    else if (accepted !== undefined) accepted.catch(() => undefined);
    this.watchCongestion();
  }

  /** Reports to the edge thread, with the others of this turn, that the publish `id` is recorded (or not). */
  private acknowledgeOnce(id: number, recorded: Promise<void> | void): void {
    if (recorded === undefined) return this.ack(id, true);
    recorded.then(
      () => this.ack(id, true),
      () => this.ack(id, false),
    );
  }

  private ack(id: number, ok: boolean): void {
    (ok ? this.recorded : this.failed).push(id);
    if (this.acking) return;
    this.acking = true;
    setImmediate(() => {
      this.acking = false;
      if (this.recorded.length > 0) this.send([ToEdge.Recorded, this.recorded.splice(0)]);
      if (this.failed.length > 0) this.send([ToEdge.Failed, this.failed.splice(0)]);
      this.watchCongestion();
      this.crossing.flush();
    });
  }

  private brokerFacade(): Broker {
    const none = { host: '', port: 0 };
    const listening = () => this.listening;
    const connected = () => this.connectedCount;
    return {
      get address() {
        return listening()?.address ?? none;
      },
      get tlsAddress() {
        return listening()?.tls;
      },
      get connectedCount() {
        return connected();
      },
      publish: (topic: string, payload: Buffer | string, opts: PublishOptions = {}): Promise<void> => {
        const { qos = 0, retain = false, except = null } = opts;
        this.send([ToEdge.Publish, topic, payload, qos, retain, except]);
        return Promise.resolve();
      },
      sendTo: (clientId: string, topic: string, payload: Buffer | string): Promise<SendOutcome> => {
        if (this.stopped !== undefined) return Promise.resolve('not-connected');
        const id = this.nextSend++;
        this.send([ToEdge.Send, id, clientId, topic, payload]);
        return new Promise<SendOutcome>((resolve) => this.sends.set(id, resolve));
      },
      subscribe: (): Promise<void> =>
        Promise.reject(new ConfigError('in-process subscriptions are not available with threads: 2')),
      close: () => this.stop(),
    };
  }
}

/**
 * The edge thread's module beside this file: compiled (`edge-thread.js`), the single executable's own bundle of it
 * (`edge-thread.cjs`, written out with the executable's files), or under the TypeScript sources (the tests)
 * `edge-thread.ts` through tsx.
 */
function edgeThreadEntry(): { entry: URL; execArgv?: string[] } {
  const here = import.meta.url;
  const candidates: Array<[string, string[] | undefined]> = [
    ['./edge-thread.js', undefined],
    ['./edge-thread.cjs', undefined],
    ['./edge-thread.ts', ['--import', 'tsx']],
  ];
  for (const [name, execArgv] of candidates) {
    const entry = new URL(name, here);
    if (entry.protocol === 'file:' && existsSync(fileURLToPath(entry)))
      return execArgv ? { entry, execArgv } : { entry };
  }
  throw new ConfigError('threads: 2 is not available in this build (the edge thread module is missing)', {
    hint: 'run with threads: 1',
  });
}
