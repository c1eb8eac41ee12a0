import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
// Before aedes: its parser must get the quiet `debug` (see quiet-debug.ts).
import './quiet-debug.js';
// After quiet-debug.ts, which must come before mqtt-packet is loaded: its parser reads in place (packet-list.ts).
import './packet-list.js';
import { Aedes, type AedesOptions, type Client, type PublishPacket } from 'aedes';
import { ConfigError, isDeviceEventTopic, listenHint } from '../shared/index.js';
import { ClientTracker } from './client-tracker.js';
import { Deliveries } from './deliveries.js';
import { BrokerClosedError } from './errors.js';
import { dropPacketNumberCache } from './packet-number-cache.js';
import { guardPacketSize } from './packet-size-guard.js';
import { EmptyClientIdError } from './security-errors.js';
import { LISTEN_BACKLOG } from './limits.js';
import { PublishWaiters } from './publish-waiters.js';
import { RouteTable } from './routes.js';
import { startTlsListener, type TlsListener } from './tls.js';
import { SubscriptionTracker } from './subscriptions.js';
import type {
  Broker,
  BrokerOptions,
  ClientInfo,
  PublishOptions,
  PublishPacketInfo,
  SendOutcome,
} from './types.js';
import { batchWrites } from './write-batching.js';

/** Starts aedes on a TCP listener; resolves once it listens. */
export async function startBroker(opts: BrokerOptions): Promise<Broker> {
  if (!Number.isSafeInteger(opts.maxPacketBytes) || opts.maxPacketBytes < 2) {
    throw new ConfigError(
      `mqtt.maxPacketBytes must be a whole number of bytes, at least 2 (got ${opts.maxPacketBytes})`,
    );
  }
  dropPacketNumberCache();
  const clients = new ClientTracker(opts.hooks, opts.logger);
  const routes = new RouteTable();
  const aedes = await Aedes.createBroker(aedesOptions(opts, clients, routes));
  routes.shortcut(aedes, opts.sessions);
  clients.watch(aedes);
  const sessions = opts.sessions;
  if (sessions !== undefined) {
    aedes.on('clientReady', (client) => sessions.sessionConnected(client.id, client.clean));
    aedes.on('clientDisconnect', (client) => sessions.sessionDisconnected(client.id, client.clean));
  }
  const sending = { subscriptions: new SubscriptionTracker(), deliveries: new Deliveries() };
  sending.deliveries.install(aedes);
  sending.subscriptions.watch(aedes, (client, filters) => {
    try {
      opts.hooks.onSubscribed?.(clients.info(client), filters);
    } catch (err) {
      opts.logger.error({ err, clientId: client.id }, 'onSubscribed hook failed');
    }
  });
  // In front of the hooks above: authentication, per-device topics and limits for outside connections.
  opts.guard?.install(aedes);

  const sockets = new Set<Socket>();
  const accept = (socket: Socket): void => {
    // Nagle's algorithm holds small packets back for the peer's delayed ACK: tens of ms per PUBACK
    // and per relayed message. batchWrites gives back the batching it did for throughput.
    socket.setNoDelay(true);
    batchWrites(socket);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    clients.accepted(socket);
    aedes.handle(socket);
    guardPacketSize(socket, opts.maxPacketBytes);
  };
  const server = createServer((socket) => {
    // Over the connection limit, the guard has closed it already.
    if (opts.guard && !opts.guard.admit(socket)) return;
    accept(socket);
  });

  let address: AddressInfo;
  try {
    address = await listen(server, opts.host, opts.port);
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw new ConfigError(`mqtt cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}`, {
      cause: err,
      hint: listenHint(err, 'mqtt.port (--mqtt-port)', 'mqtt.host (--mqtt-host)'),
    });
  }
  server.on('error', (err) => opts.logger.error({ err }, 'mqtt listener error'));
  let tls: TlsListener | undefined;
  if (opts.tls) {
    try {
      tls = await startTlsListener(opts.tls, { guard: opts.guard, logger: opts.logger, accept });
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      throw err;
    }
  }
  return new EmbeddedBroker(
    aedes,
    server,
    sockets,
    clients,
    sending,
    routes,
    { host: opts.host, port: address.port },
    tls,
  );
}

function aedesOptions(opts: BrokerOptions, clients: ClientTracker, routes: RouteTable): AedesOptions {
  const connections = new ConnectionNumbers();
  const waiters = new PublishWaiters<ClientInfo>((err, info, topic, done) =>
    refuse(err, info, topic, done, opts.logger),
  );
  const meta: PublishPacketInfo = { dup: false, messageId: undefined, connection: 0 };
  const publishing: PublishContext = { clients, connections, waiters, opts, meta };
  // Connections whose CONNECT has a zero-length client id and asks for a persistent session.
  const noSessionId = new WeakSet<Client>();
  return {
    // The router, with the topic filters it holds known (routes.ts), and without a cap on messages in flight.
    mq: routes,
    // Passed on to each socket's listener limit (0: none), as when aedes made the router with this cap.
    concurrency: 0,
    // The guard closes a connection that has not completed CONNECT in time, counted and logged as such;
    // aedes' own timer (which logs every connection it closes) is left a little longer so it never comes first.
    ...(opts.guard ? { connectTimeout: opts.guard.connectTimeoutMs + 1_000 } : {}),
    ...(opts.sessions ? { persistence: opts.sessions } : {}),
    // aedes makes up an id for a zero-length one; only CONNECT itself tells that it was empty.
    preConnect: (client, packet, done) => {
      if (packet.clientId === '' && !packet.clean) noSessionId.add(client);
      done(null, true);
    },
    authenticate: (client, _username, _password, done) => {
      // [MQTT-3.1.3-8] A zero-length client id with CleanSession 0: CONNACK 0x02, then the connection closes.
      if (noSessionId.has(client)) {
        const refused = new EmptyClientIdError();
        opts.logger.warn(
          { code: refused.code, reason: 'empty-client-id', address: clients.info(client).address },
          'mqtt connect refused',
        );
        return done(refused, false);
      }
      clients.beforeRegister(client);
      done(null, true);
    },
    authorizePublish: (client, packet, done) => authorizePublish(client, packet, done, publishing),
  };
}

class EmbeddedBroker implements Broker {
  private closing: Promise<void> | undefined;

  constructor(
    private readonly aedes: Aedes,
    private readonly server: Server,
    private readonly sockets: Set<Socket>,
    private readonly clients: ClientTracker,
    private readonly sending: { subscriptions: SubscriptionTracker; deliveries: Deliveries },
    private readonly routes: RouteTable,
    readonly address: { host: string; port: number },
    private readonly tls?: TlsListener,
  ) {}

  get tlsAddress(): { host: string; port: number } | undefined {
    return this.tls ? { host: this.tls.address.address, port: this.tls.address.port } : undefined;
  }

  get connectedCount(): number {
    return this.clients.connectedCount;
  }

  get connectionSteps(): number {
    return this.clients.connectionSteps;
  }

  get unroutedPublishes(): number {
    return this.routes.unrouted;
  }

  publish(topic: string, payload: Buffer | string, opts: PublishOptions = {}): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new BrokerClosedError(topic));
    // A copy when one client is left out: that client is known by this very buffer.
    const bytes = typeof payload === 'string' || opts.except !== undefined ? Buffer.from(payload) : payload;
    if (opts.except !== undefined) this.sending.deliveries.skipFor(bytes, opts.except);
    const packet: PublishPacket = {
      cmd: 'publish',
      topic,
      payload: bytes,
      qos: opts.qos ?? 0,
      retain: opts.retain ?? false,
      dup: false,
    };
    return new Promise((resolve, reject) => {
      this.aedes.publish(packet, (err) => (err ? reject(err) : resolve()));
    });
  }

  sendTo(clientId: string, topic: string, payload: Buffer | string): Promise<SendOutcome> {
    const client = this.closing === undefined ? this.clients.byClientId(clientId) : undefined;
    if (client === undefined || client.closed) return Promise.resolve('not-connected');
    const qos = this.sending.subscriptions.qosFor(client, topic);
    if (qos === undefined) return Promise.resolve('not-subscribed');
    // A buffer of its own: the delivery is followed by it.
    return this.sending.deliveries.send(client, topic, Buffer.from(payload), qos > 0 ? 1 : 0);
  }

  subscribe(pattern: string, onMessage: (topic: string, payload: Buffer) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.aedes.subscribe(
        pattern,
        (packet, done) => {
          try {
            onMessage(
              packet.topic,
              Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
            );
          } finally {
            done();
          }
        },
        () => (this.closing !== undefined ? reject(new BrokerClosedError(pattern)) : resolve()),
      );
    });
  }

  close(): Promise<void> {
    return (this.closing ??= this.shutDown());
  }

  private async shutDown(): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.clients.kickAll();
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    // Connections that never completed CONNECT are not aedes clients, and would hold the server open.
    for (const socket of this.sockets) socket.destroy();
    await this.tls?.close();
    await stopped;
  }
}

/** What `authorizePublish` works with, made once per broker. */
interface PublishContext {
  clients: ClientTracker;
  connections: ConnectionNumbers;
  waiters: PublishWaiters<ClientInfo>;
  opts: Pick<BrokerOptions, 'hooks' | 'logger'>;
  /** What the hook is told of each publish, rewritten for the next. */
  meta: PublishPacketInfo;
}

/**
 * Device events go to the hook before aedes acknowledges them; everything else a client publishes is
 * relayed as a plain broker would.
 */
function authorizePublish(
  client: Client | null,
  packet: PublishPacket,
  done: (err?: Error | null) => void,
  { clients, connections, waiters, opts, meta }: PublishContext,
): void {
  // A will left by another broker instance, replayed from persistence (none with in-memory persistence).
  if (client === null) return done(null);
  // aedes' default policy, kept: $SYS/ is the broker's own [MQTT-4.7.2-1].
  if (packet.topic.startsWith('$SYS/')) return done(new Error('$SYS/ topics are reserved to the broker'));
  if (!isDeviceEventTopic(packet.topic)) return done(null);

  const info = clients.info(client);
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  // One object for every publish, read by the hook during its call (see `BrokerHooks.onPublish`).
  meta.dup = packet.dup;
  meta.messageId = packet.qos > 0 ? packet.messageId : undefined;
  meta.connection = connections.of(client);
  let pending: Promise<void> | void;
  try {
    pending = opts.hooks.onPublish(info, packet.topic, payload, packet.qos, meta);
  } catch (err) {
    return refuse(err, info, packet.topic, done, opts.logger);
  }
  // No closures for a publish that is acknowledged at once (QoS 0), nor for one that waits with others.
  if (pending === undefined) return done(null);
  waiters.wait(pending, done, info, packet.topic);
}

function refuse(
  err: unknown,
  info: { id: string; address: string | undefined },
  topic: string,
  done: (err?: Error | null) => void,
  logger: BrokerOptions['logger'],
): void {
  logger.error(
    { err, clientId: info.id, address: info.address, topic },
    'publish not acknowledged; closing the connection so that the device sends it again',
  );
  done(err instanceof Error ? err : new Error(String(err)));
}

/** Numbers each client connection the first time it publishes: a reconnect is a new Client, with a new number. */
class ConnectionNumbers {
  private readonly numbers = new WeakMap<Client, number>();
  private next = 0;

  of(client: Client): number {
    let n = this.numbers.get(client);
    if (n === undefined) {
      n = this.next++;
      this.numbers.set(client, n);
    }
    return n;
  }
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.removeListener('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
