// The load generator, run as a child process of run.ts so that its CPU is its own: the simulator's fleet and
// readings (firmware-sim), written straight to the sockets as whole MQTT packets, and the replies timed here, in
// the process that stamped the send times.
import { EventSchedule, nowMs, planFleet, type DevicePlan } from '../../firmware-sim/index.js';
import { jsonTimestamp, publishBytes, topicField, writePublish } from './mqtt-wire.js';
import { LatencyHistogram, ReplyMatcher, replyKey } from './latency.js';
import {
  loopbackAddress,
  type ConnectRequest,
  type GenRequest,
  type GenResponse,
  type IdleRequest,
  type LoadRequest,
  type LoadResult,
} from './load-protocol.js';
import { KEEPALIVE_S, RawClient } from './raw-client.js';

/** A device's socket holding more than this unread by the broker gets no more events until it drains. */
const MAX_BACKLOG_BYTES = 256 * 1024;
const CONNECT_CONCURRENCY = 100;
/** Events handed out in one turn of the loop at most, before it yields to read replies. */
const MAX_EVENTS_PER_TURN = 4_096;
/** The drain ends early once nothing more has come back for this long. */
const QUIET_MS = 1_000;

interface Link {
  readonly device: DevicePlan;
  readonly client: RawClient;
  readonly topic: Buffer;
  packetId: number;
  /** This turn's events for the device: the payloads up to `"ts":`, and their readings. */
  readonly prefixes: string[];
  readonly temps: number[];
}

interface Run {
  readonly qos: 0 | 1;
  measuring: boolean;
  windowStartMs: number;
  windowEndMs: number;
  sent: number;
  sentTotal: number;
  held: number;
  qos1Sent: number;
  acked: number;
  readonly relay: LatencyHistogram;
  relayReceived: number;
  readonly commands: ReplyMatcher;
  readonly cloud: ReplyMatcher;
  lastReplyMs: number;
}

interface ActionJson {
  scenario?: unknown;
  actor?: unknown;
  payload?: { temp?: unknown };
}

class Generator {
  private links: (Link | undefined)[] = [];
  private schedule: EventSchedule | undefined;
  private mode: ConnectRequest['mode'] = 'relay';
  private readonly others: RawClient[] = [];
  private idle: RawClient[] = [];
  private run: Run | undefined;
  private readonly pinger = setInterval(() => this.ping(), (KEEPALIVE_S * 1_000) / 2);

  async connect(req: ConnectRequest): Promise<GenResponse> {
    const started = nowMs();
    const { host, port } = hostPort(req.url);
    const plan = planFleet({
      devices: req.devices,
      seed: req.seed,
      sites: req.sites,
      customers: req.customers,
      rate: 1,
      durationMs: Infinity,
    });
    this.mode = req.mode;
    this.schedule = new EventSchedule(plan);
    this.links = new Array<Link | undefined>(plan.devices.length);
    await inParallel(plan.devices, CONNECT_CONCURRENCY, async (device) => {
      const client = await RawClient.open(
        host,
        port,
        device.id,
        `devices/${device.id}/commands/#`,
        {
          onPublish: (topic, payload) => this.onCommand(topic, payload),
          onPuback: () => {
            if (this.run) this.run.acked++;
          },
        },
        req.secret,
      );
      this.links[device.index] = {
        device,
        client,
        topic: topicField(`devices/${device.id}/events/telemetry`),
        packetId: 0,
        prefixes: [],
        temps: [],
      };
    });
    if (req.mode === 'relay') {
      // One subscriber for the whole fleet, as in the relay baseline; QoS 0 (see docs/benchmarks.md).
      this.others.push(
        await RawClient.open(host, port, 'bench-sink', 'devices/+/events/telemetry', {
          onPublish: (_topic, payload) => this.onRelayed(payload),
        }),
      );
    }
    if (req.cloudUrl !== undefined) {
      const cloud = hostPort(req.cloudUrl);
      this.others.push(
        // A client id of its own: each system has its generator, and the cloud broker keeps one connection per id.
        await RawClient.open(cloud.host, cloud.port, `bench-cloud-${process.pid}`, 'vigil/+/actions', {
          onPublish: (_topic, payload) => this.onUpstream(payload),
        }),
      );
    }
    return { kind: 'connected', ms: nowMs() - started, connected: this.links.length };
  }

  async load(req: LoadRequest): Promise<GenResponse> {
    const run: Run = {
      qos: req.qos,
      measuring: false,
      windowStartMs: Infinity,
      windowEndMs: Infinity,
      sent: 0,
      sentTotal: 0,
      held: 0,
      qos1Sent: 0,
      acked: 0,
      relay: new LatencyHistogram(),
      relayReceived: 0,
      commands: new ReplyMatcher(),
      cloud: new ReplyMatcher(),
      lastReplyMs: 0,
    };
    this.run = run;
    const cpu = await this.publish(run, req);
    await this.drain(run, req.drainMs);
    this.run = undefined;
    const windowMs = run.windowEndMs - run.windowStartMs;
    const relay = this.mode === 'relay';
    const result: LoadResult = {
      sent: run.sent,
      sentTotal: run.sentTotal,
      achievedRate: (run.sent * 1_000) / windowMs,
      held: run.held,
      latency: relay ? run.relay.summary() : run.commands.latency.summary(),
      expected: relay ? run.sent : run.commands.expected,
      received: relay ? run.relayReceived : run.commands.matched,
      cloudLatency: run.cloud.latency.summary(),
      cloudExpected: run.cloud.expected,
      cloudReceived: run.cloud.matched,
      qos1Sent: run.qos1Sent,
      acked: run.acked,
      cpuPct: ((cpu.user + cpu.system) / 1_000 / windowMs) * 100,
      windowMs,
      unmatched: run.commands.unmatched + run.cloud.unmatched,
    };
    return { kind: 'loaded', result };
  }

  async openIdle(req: IdleRequest): Promise<GenResponse> {
    const started = nowMs();
    const { host, port } = hostPort(req.url);
    const ids = Array.from({ length: req.connections }, (_, i) => `${req.idPrefix}${i + 1}`);
    const opened: RawClient[] = [];
    let failed = 0;
    // Each reason a connection failed, and how many failed for it.
    const why = new Map<string, number>();
    const from = (i: number): string | undefined =>
      req.perAddress === undefined ? undefined : loopbackAddress(1 + Math.floor(i / req.perAddress));
    const indexes = ids.map((_, i) => i);
    await inParallel(indexes, req.storm === true ? ids.length : CONNECT_CONCURRENCY * 2, async (i) => {
      const id = ids[i] as string;
      const open = RawClient.open(host, port, id, `devices/${id}/commands/#`, {}, req.secret, from(i));
      if (req.storm !== true) opened.push(await open);
      else
        await open.then(
          (c) => opened.push(c),
          (err: unknown) => {
            failed++;
            const reason = err instanceof Error ? err.message.replace(/^dev-\d+: /, '') : String(err);
            why.set(reason, (why.get(reason) ?? 0) + 1);
          },
        );
    });
    this.idle = opened;
    return {
      kind: 'idle',
      connected: opened.length,
      ms: nowMs() - started,
      failed,
      why: [...why].map(([reason, n]) => `${reason}: ${n}`),
    };
  }

  async close(): Promise<GenResponse> {
    clearInterval(this.pinger);
    const clients = [...this.links.flatMap((l) => (l ? [l.client] : [])), ...this.others, ...this.idle];
    await Promise.all(clients.map((c) => c.close()));
    return { kind: 'closed' };
  }

  /**
   * Sends `rate` events a second: each turn hands out the events that fell due since the last one, grouped by
   * device, and writes each device's group as one buffer (with one send time), so a late turn costs fewer
   * writes rather than more. Resolves to the CPU used during the measured window.
   */
  private publish(run: Run, req: LoadRequest): Promise<NodeJS.CpuUsage> {
    const schedule = this.schedule;
    if (!schedule) throw new Error('connect first');
    const startMs = nowMs();
    const warmEndMs = startMs + req.warmupMs;
    const endMs = warmEndMs + req.measureMs;
    let handedOut = 0;
    let cpuAtStart = process.cpuUsage();
    const touched: Link[] = [];
    return new Promise((resolve) => {
      const turn = (): void => {
        const now = nowMs();
        if (!run.measuring && now >= warmEndMs) {
          run.measuring = true;
          run.windowStartMs = now;
          cpuAtStart = process.cpuUsage();
        }
        if (now >= endMs) {
          run.windowEndMs = now;
          run.measuring = false;
          resolve(process.cpuUsage(cpuAtStart));
          return;
        }
        const due = Math.min(
          Math.floor(((now - startMs) * req.rate) / 1_000) - handedOut,
          MAX_EVENTS_PER_TURN,
        );
        for (let i = 0; i < due; i++) {
          const event = schedule.next();
          if (!event) break;
          const link = this.links[event.device.index];
          if (!link || link.client.closed || link.client.backlog > MAX_BACKLOG_BYTES) {
            if (run.measuring) run.held++;
            continue;
          }
          const { temp, hum, bat } = event.data;
          if (link.prefixes.length === 0) touched.push(link);
          link.prefixes.push(`{"temp":${temp},"hum":${hum},"bat":${bat},"ts":`);
          link.temps.push(temp);
        }
        handedOut += Math.max(0, due);
        for (const link of touched) this.flush(link, run);
        touched.length = 0;
        if (due >= MAX_EVENTS_PER_TURN) setImmediate(turn);
        else setTimeout(turn, 1);
      };
      turn();
    });
  }

  /** Writes a device's events of this turn in one go, stamped with the time of the write. */
  private flush(link: Link, run: Run): void {
    const ts = Math.round(nowMs() * 1_000) / 1_000;
    const tail = `${ts}}`;
    const qos1 = run.qos === 1;
    let bytes = 0;
    for (const prefix of link.prefixes)
      bytes += publishBytes(link.topic, prefix.length + tail.length, qos1 ? 1 : 0);
    const out = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (let i = 0; i < link.prefixes.length; i++) {
      let packetId = 0;
      if (qos1) {
        link.packetId = (link.packetId % 65_535) + 1;
        packetId = link.packetId;
        run.qos1Sent++;
      }
      at = writePublish(out, at, link.topic, `${link.prefixes[i]}${tail}`, packetId);
      const temp = link.temps[i] ?? 0;
      if (this.mode === 'vigil' && temp > link.device.profile.maxTemp) {
        const key = replyKey(link.device.id, temp);
        run.commands.expect(key, ts, run.measuring);
        run.cloud.expect(key, ts, run.measuring);
      }
    }
    if (run.measuring) run.sent += link.prefixes.length;
    run.sentTotal += link.prefixes.length;
    link.prefixes.length = 0;
    link.temps.length = 0;
    link.client.write(out);
  }

  /** Waits for the replies still on their way, until all came or nothing more came for a while. */
  private async drain(run: Run, drainMs: number): Promise<void> {
    const giveUpMs = nowMs() + drainMs;
    run.lastReplyMs = nowMs();
    const complete = (): boolean =>
      (this.mode === 'relay'
        ? run.relayReceived >= run.sent
        : run.commands.missing <= 0 && (this.others.length === 0 || run.cloud.missing <= 0)) &&
      run.acked >= run.qos1Sent;
    while (!complete() && nowMs() < giveUpMs && nowMs() - run.lastReplyMs < QUIET_MS) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  private onRelayed(payload: Buffer): void {
    const run = this.run;
    if (!run) return;
    const now = nowMs();
    run.lastReplyMs = now;
    const ts = jsonTimestamp(payload);
    if (ts >= run.windowStartMs && ts <= run.windowEndMs) {
      run.relayReceived++;
      run.relay.recordMs(now - ts);
    }
  }

  private onCommand(topic: string, payload: Buffer): void {
    const run = this.run;
    if (!run || this.mode !== 'vigil' || !topic.includes('/commands/')) return;
    const now = nowMs();
    run.lastReplyMs = now;
    const action = parseJson(payload);
    if (!Array.isArray(action)) matchAction(action, run.commands, now);
  }

  private onUpstream(payload: Buffer): void {
    const run = this.run;
    if (!run) return;
    const now = nowMs();
    run.lastReplyMs = now;
    // One action per message, or a JSON array when the uplink batches.
    const body = parseJson(payload);
    for (const action of Array.isArray(body) ? body : [body]) matchAction(action, run.cloud, now);
  }

  private ping(): void {
    for (const link of this.links) link?.client.ping();
    for (const client of this.others) client.ping();
    for (const client of this.idle) client.ping();
  }
}

/** The replies timed are those of the `overheat` scenario: its payload echoes the reading. */
function matchAction(action: unknown, matcher: ReplyMatcher, now: number): void {
  if (typeof action !== 'object' || action === null) return;
  const { scenario, actor, payload } = action as ActionJson;
  if (scenario !== 'overheat' || typeof actor !== 'string' || typeof payload?.temp !== 'number') return;
  matcher.arrived(replyKey(actor, payload.temp), now);
}

function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}

function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

async function inParallel<T>(
  items: readonly T[],
  width: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

const generator = new Generator();

async function handle(req: GenRequest): Promise<GenResponse> {
  switch (req.kind) {
    case 'connect':
      return generator.connect(req);
    case 'load':
      return generator.load(req);
    case 'idle':
      return generator.openIdle(req);
    case 'close':
      return generator.close();
  }
}

process.on('message', (req: GenRequest) => {
  handle(req).then(
    (res) => process.send?.(res),
    (err: unknown) =>
      process.send?.({ kind: 'error', message: err instanceof Error ? err.message : String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
