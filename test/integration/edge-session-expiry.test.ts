// With `threads: 2` a persistent session expires on the decision thread (MqttSessions, in LevelDB) while its client
// may be reconnecting on the edge thread (aedes over EdgeSessions). The two threads are wired here as they are in
// the gateway, each crossing in order and its records encoded and decoded as they cross, but in one thread, so that
// the test decides where the expiry falls among the edge thread's calls: real threads would leave it to chance.
import { decode, encode } from 'cbor-x';
import type mqtt from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { EdgeSessions } from '../../src/app/edge-sessions.js';
import { asPacket, type SessionMethod } from '../../src/app/edge-wire.js';
import { serveSessions } from '../../src/app/session-service.js';
import { startBroker, type Broker } from '../../src/broker/index.js';
import { MqttSessions, openStore } from '../../src/store/index.js';
import { connectWithConnack, until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const EXPIRY_MS = 3_600_000;
const COMMANDS = 'devices/d1/commands/#';

/** A value as the other thread reads it: encoded, decoded, its payloads copied out. */
function crossed<T>(value: T): T {
  const back = decode(encode(value)) as T;
  return (Array.isArray(back) ? back.map(asPacket) : asPacket(back)) as T;
}

/**
 * The crossings between the two threads: the edge thread's session calls to the decision thread, in the order
 * sent, and the answers and expiries back, in the order sent. The way to the decision thread can be held.
 */
class Wire {
  readonly toDecision: Array<() => void> = [];
  #held = false;
  #scheduled = false;

  constructor(
    private readonly serve: (method: SessionMethod, args: unknown[]) => Promise<unknown>,
    private readonly toEdge: (deliver: () => void) => void,
  ) {}

  call(method: SessionMethod, args: unknown[], answer?: (value: unknown) => void): void {
    const sent = crossed(args);
    this.toDecision.push(() => {
      void this.serve(method, sent).then((value) => answer && this.toEdge(() => answer(crossed(value))));
    });
    this.#schedule();
  }

  hold(): void {
    this.#held = true;
  }

  /** Delivers the first `count` records held (all when not given), and no longer holds when all are. */
  deliver(count = this.toDecision.length): void {
    for (const record of this.toDecision.splice(0, count)) record();
    if (count >= 0 && this.toDecision.length === 0) this.#held = false;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#held) this.deliver();
    });
  }
}

interface Rig {
  broker: Broker;
  sessions: MqttSessions;
  wire: Wire;
  advance(ms: number): void;
}

async function rig(): Promise<Rig> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const store = await openStore(dir.path);
  cleanups.push(() => store.close());
  let nowMs = 1_000_000;
  let edge: EdgeSessions | undefined;
  // The decision thread sends an edge thread's record at once; it arrives after those sent before it.
  const toEdge = (deliver: () => void): void => void setImmediate(deliver);
  const sessions = await MqttSessions.open(store.db, {
    limits: { expiryMs: EXPIRY_MS },
    now: () => nowMs,
    onExpired: (clientId) => toEdge(() => edge?.expired(clientId)),
  });
  cleanups.push(() => sessions.close());
  const wire = new Wire(serveSessions(sessions), toEdge);
  edge = new EdgeSessions(
    (method, args) => new Promise((resolve) => wire.call(method, args, resolve)),
    (method, args) => wire.call(method, args),
  );
  const broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    maxPacketBytes: 65_536,
    logger: pino({ level: 'silent' }),
    sessions: edge,
    hooks: { onPublish: () => undefined, onConnected: () => undefined, onDisconnected: () => undefined },
  });
  cleanups.push(() => broker.close());
  return { broker, sessions, wire, advance: (ms) => void (nowMs += ms) };
}

/** Connects d1 with a persistent session; `received` gets every message as `topic payload`. */
function connect(r: Rig, received: string[] = []) {
  const opts: mqtt.IClientOptions = { clientId: 'd1', clean: false, protocolVersion: 4 };
  return connectWithConnack(r.broker.address.port, opts, received, (c) => cleanups.push(c));
}

async function disconnect(r: Rig, client: mqtt.MqttClient): Promise<void> {
  await client.endAsync();
  await until('the broker to see d1 go', () => r.broker.connectedCount === 0);
  // Its session's end crosses to the decision thread.
  await until('the edge thread to have told it', () => r.wire.toDecision.length === 0);
  await new Promise((resolve) => setImmediate(resolve));
}

/** d1 subscribed to its commands and went away; one command was queued for it; its session is due to expire. */
async function awayAndDue(r: Rig): Promise<void> {
  const { client } = await connect(r);
  await client.subscribeAsync(COMMANDS, { qos: 1 });
  await disconnect(r, client);
  await r.broker.publish('devices/d1/commands/one', 'm1', { qos: 1 });
  await until('m1 queued for d1', () => r.sessions.stats().queued === 1);
  r.advance(EXPIRY_MS);
}

/** d1's session, as its next connection finds it, keeps what is published while d1 is away. */
async function expectKeptMeanwhile(r: Rig, client: mqtt.MqttClient): Promise<void> {
  await disconnect(r, client);
  await r.broker.publish('devices/d1/commands/two', 'm2', { qos: 1 });
  await until('m2 kept for d1', () => r.sessions.stats().queued === 1);
  const received: string[] = [];
  const { connack } = await connect(r, received);
  expect(connack.sessionPresent).toBe(true);
  await until('m2 delivered', () => received.includes('devices/d1/commands/two m2'));
}

/** Resolves once the edge thread has sent a session call for the connection under way, held on the way. */
async function connectionAsked(r: Rig): Promise<void> {
  await until('the connection to ask the decision thread', () => r.wire.toDecision.length > 0);
}

describe('a persistent session expiring on the decision thread while its client reconnects on the edge thread', () => {
  test('when the reconnection reaches the decision thread first, the session stays, with what it kept', async () => {
    const r = await rig();
    await awayAndDue(r);
    r.wire.hold();
    const received: string[] = [];
    const connecting = connect(r, received);
    await connectionAsked(r);
    r.wire.deliver(1);
    await new Promise((resolve) => setImmediate(resolve));
    const expired = await r.sessions.expire();
    r.wire.deliver();
    const { client, connack } = await connecting;
    expect(connack.sessionPresent).toBe(true);
    await until('m1 delivered', () => received.includes('devices/d1/commands/one m1'), 1_000);
    expect(expired).toBe(0);
    expect(await r.sessions.subscriptionsHeld()).toEqual([
      ['d1', [expect.objectContaining({ topic: COMMANDS })]],
    ]);
    await expectKeptMeanwhile(r, client);
  });

  test('when the expiry reaches it first, the client finds no session, and what it subscribes to then is kept', async () => {
    const r = await rig();
    await awayAndDue(r);
    r.wire.hold();
    const received: string[] = [];
    const connecting = connect(r, received);
    await connectionAsked(r);
    expect(await r.sessions.expire()).toBe(1);
    r.wire.deliver();
    const { client, connack } = await connecting;
    // The session is gone, and the client is told so [MQTT-3.2.2-2]: nothing of it is restored.
    expect(connack.sessionPresent).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toEqual([]);
    expect(await r.sessions.subscriptionsHeld()).toEqual([]);
    await client.subscribeAsync(COMMANDS, { qos: 1 });
    await expectKeptMeanwhile(r, client);
  });
});
