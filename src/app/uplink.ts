import { Counter, Gauge } from 'prom-client';
import { decidedOnGatewayAt } from '../actions/index.js';
import {
  loadUplink,
  queuedExpired,
  TelemetryLane,
  type CloudMessage,
  type Uplink,
} from '../upstream/index.js';
import { retryUntilDone } from '../runtime/index.js';
import type { Action, Candidate } from '../shared/index.js';
import { auditEntryOf } from '../store/index.js';
import type { DecisionModule } from './decision.js';
import type { Foundation } from './foundation.js';
import type { Started } from './modules.js';

/** How often actions that waited past their `ttl` leave the outbox. */
const EXPIRE_EVERY_MS = 60_000;

/**
 * A handler for messages the cloud sends down on one topic. A promise it returns holds the acknowledgement back
 * until it resolves; when it rejects, the message is not acknowledged and the broker delivers it again.
 */
export type CloudHandler = (payload: Buffer, message: CloudMessage) => Promise<unknown> | void;

/** The durable outbox and the cloud connection (docs/architecture.md, "Uplink"). */
export interface UplinkModule extends Started {
  /** The connection, when an upstream is configured. */
  readonly uplink: Uplink | undefined;
  /** `connected`, `disconnected`, or `none` without an upstream. */
  state(): 'connected' | 'disconnected' | 'none';
  /** Routes messages on `topic` (one of the gateway's upstream topics) to `handler`; before `connect`. */
  route(topic: string, handler: CloudHandler): void;
  /** Connects to the cloud, once every topic has its handler. */
  connect(): void;
  /**
   * Publishes a status message upstream (QoS 1), dropped while disconnected; a retained one is published again
   * on every connection until replaced, so the cloud's copy is never older than the gateway's.
   */
  publishStatus(topic: string, payload: string, opts?: { retain: boolean }): void;
}

export async function startUplink(base: Foundation, decision: DecisionModule): Promise<UplinkModule> {
  const { config, logger, metrics, store } = base;
  const { clock, recent } = decision;
  const outbox = store.outbox;
  const routes = new Map<string, CloudHandler>();
  const pending = new Set<Promise<unknown>>();
  let stopping = false;
  const gauge = (): void => {
    metrics.outboxDepth.set(outbox.size);
    metrics.outboxBytes.set(outbox.bytes);
  };

  const onExpired = (action: Action, now: number): void => {
    gauge();
    reportExpired(base, decision, action, now);
  };

  const uplink =
    config.upstream.url === undefined ? undefined : await connection(base, decision, routes, onExpired);

  const write = (candidate: Candidate): void => {
    const { action } = candidate;
    if (alreadyQueued(base, decision, action)) return;
    // Retried until it is written: until then, no checkpoint forgets the input that decided it.
    const added = retryUntilDone(() => outbox.add(action), {
      stopped: () => stopping,
      onError: (err, attempt) => {
        metrics.outboxErrors.inc();
        decision.durable.metrics.outboxRetries.inc();
        if (attempt === 1 || attempt % 10 === 0) {
          logger.error(
            { err, id: action.id, scenario: action.scenario, attempt },
            'action could not be written to the outbox; trying again',
          );
        }
      },
    });
    pending.add(added);
    decision.holdCheckpointsFor(added);
    // One reaction for either outcome, which also lets `stop` stop waiting for it.
    added.then(
      (result) => {
        pending.delete(added);
        if (result.status === 'delivered') metrics.outboxRedeliverySkipped.inc();
        // Dropped already, to make room: decided again by recovery, not queued again.
        if (result.status === 'dropped' && result.dropped.length === 0)
          decision.durable.metrics.droppedActionsNotResent.inc();
        for (const dropped of result.dropped) {
          recent.dropped(dropped, 'outbox-full');
          metrics.outboxDropped.inc({ scenario: dropped.scenario });
          logger.warn(
            { id: dropped.id, scenario: dropped.scenario, priority: dropped.priority, actor: dropped.actor },
            'outbox full: dropped the lowest-priority, oldest action',
          );
        }
        gauge();
        uplink?.kick();
      },
      (err: unknown) => {
        pending.delete(added);
        logger.error(
          { err, id: action.id, scenario: action.scenario },
          'action could not be written to the outbox; the journal still has its input, replayed on the next start',
        );
      },
    );
  };
  // A new policy may let waiting actions go now (a higher rate, a shorter ttl).
  decision.rules.onSwap(() => uplink?.kick());
  decision.onSent((candidate) => {
    if (candidate.to.includes('upstream')) write(candidate);
  });
  forgetDeliveredAtCheckpoints(base, decision);
  readOutboxCounts(base);
  gauge();

  // Expired actions leave the outbox even while the uplink is down, or absent, rather than take room there.
  const expire = setInterval(() => {
    const now = clock.now();
    if (uplink) return uplink.expireQueued(now);
    expireWithoutUplink(base, decision, now, onExpired);
  }, EXPIRE_EVERY_MS);
  expire.unref();

  return {
    uplink,
    state: () => (uplink ? (uplink.connected ? 'connected' : 'disconnected') : 'none'),
    route: (topic, handler) => void routes.set(topic, handler),
    connect: () => uplink?.connect(),
    publishStatus: (topic, payload, how) => uplink?.publishStatus(topic, payload, how),
    async stop() {
      clearInterval(expire);
      // Writes that keep failing give up now; their inputs stay in the journal for the next start.
      stopping = true;
      await Promise.allSettled([...pending]);
      await uplink?.stop();
    },
  };
}

/**
 * Whether the action is on disk in the outbox already, was delivered, or was dropped to make room (recovery decides
 * again what it had queued): then there is nothing to write, nor to hold a checkpoint for, nor new for the drain,
 * and a lookup answers instead of a write's promise, a retry and a hold.
 */
function alreadyQueued(base: Foundation, decision: DecisionModule, action: Action): boolean {
  const known = base.store.outbox.known(action.id);
  if (known === 'delivered') base.metrics.outboxRedeliverySkipped.inc();
  if (known === 'dropped') decision.durable.metrics.droppedActionsNotResent.inc();
  return known !== undefined;
}

/** What `Uplink.expireQueued` does, without an uplink: drops the actions past their ttl and reports each. */
function expireWithoutUplink(
  base: Foundation,
  decision: DecisionModule,
  now: number,
  onExpired: (action: Action, now: number) => void,
): void {
  const { outbox } = base.store;
  for (const queued of queuedExpired(outbox, decision.rules.rules.policy, now)) {
    // Reported at once when in memory, else once read back from disk.
    const inMemory = queued.action;
    const removed = outbox.remove(queued.id);
    if (inMemory !== undefined) onExpired(inMemory, now);
    removed.then(
      (read) => {
        if (inMemory === undefined && read !== undefined) onExpired(read, now);
      },
      (err: unknown) =>
        base.logger.error({ err, id: queued.id }, 'outbox remove of an expired action failed'),
    );
  }
}

/** An action that waited in the outbox past its category's ttl is dropped, not sent late. */
function reportExpired(base: Foundation, decision: DecisionModule, action: Action, now: number): void {
  base.metrics.actionsSuppressed.inc({ scenario: action.scenario, reason: 'ttl' });
  base.logger.info(
    {
      id: action.id,
      scenario: action.scenario,
      actor: action.actor,
      category: action.category,
      waitedMs: now - decidedOnGatewayAt(action),
    },
    'action dropped: it waited in the outbox past its ttl',
  );
  base.audit.append(auditEntryOf(action, decision.wallClock.now(), 'ttl'));
  decision.recent.dropped(action, 'ttl');
}

/** The ids the cloud acknowledged are kept only while a recovery could decide those actions again. */
function forgetDeliveredAtCheckpoints(base: Foundation, decision: DecisionModule): void {
  const { outbox } = base.store;
  decision.onCheckpoint((replayFromAt) => {
    outbox.forgetDeliveredBefore(replayFromAt).catch((err: unknown) => {
      base.logger.warn({ err }, 'delivered ids not forgotten; the next checkpoint tries again');
    });
  });
}

/** What the outbox counts itself, read by /metrics at scrape time. */
function readOutboxCounts(base: Foundation): void {
  const { outbox } = base.store;
  base.metrics.readFrom({
    deliveredIds: () => ({ held: outbox.deliveredCount, dropped: outbox.deliveredDropped }),
    // A failed read-ahead, or delete of acknowledged actions, is logged by the store and tried again by the outbox.
    outboxReadErrors: () => outbox.readErrors,
    outboxDeleteErrors: () => outbox.deleteErrors,
  });
}

/** The telemetry lane of `upstream.telemetry`, with its metrics. */
function telemetryLane(base: Foundation): TelemetryLane {
  const { config, gatewayId, metrics } = base;
  const lane = new TelemetryLane({ gatewayId, ...config.upstream.telemetry });
  const registers = [metrics.registry];
  const totals: Array<[string, string, () => number]> = [
    [
      'vigil_telemetry_sent_total',
      'Telemetry messages published (QoS 0, at most once)',
      () => lane.counts.sent,
    ],
    [
      'vigil_telemetry_dropped_total',
      'Telemetry messages dropped because the lane was full (upstream.telemetry.drop says which)',
      () => lane.counts.dropped,
    ],
    [
      'vigil_telemetry_sampled_out_total',
      "Telemetry left out by a scenario's sampling (forward.sample, forward.every)",
      () => lane.counts.sampledOut,
    ],
  ];
  for (const [name, help, read] of totals) {
    const counter: Counter = new Counter({
      name,
      help,
      registers,
      collect: () => {
        counter.reset();
        counter.inc(read());
      },
    });
  }
  const queued: Gauge = new Gauge({
    name: 'vigil_telemetry_queued',
    help: 'Telemetry messages waiting in the lane',
    registers,
    collect: () => queued.set(lane.size),
  });
  return lane;
}

async function connection(
  base: Foundation,
  decision: DecisionModule,
  routes: ReadonlyMap<string, CloudHandler>,
  onExpired: (action: Action, now: number) => void,
): Promise<Uplink> {
  const { config, logger, metrics, store } = base;
  const batch = config.upstream.batch;
  const Uplink = await loadUplink();
  // Without an upstream, what scenarios forward goes nowhere.
  const telemetry = telemetryLane(base);
  const uplink = new Uplink({
    url: config.upstream.url ?? '',
    gatewayId: base.gatewayId,
    clientId: config.upstream.clientId,
    session: { protocolVersion: config.upstream.protocolVersion, expiryMs: config.upstream.sessionExpiry },
    username: config.upstream.username,
    password: config.upstream.password,
    tls: base.files.upstreamTls,
    keepaliveMs: config.upstream.keepalive,
    reconnectMs: config.upstream.reconnect,
    inflight: config.upstream.inflight,
    outbox: store.outbox,
    logger,
    // Read at use: a rules swap changes the rate and the ttl at once.
    policy: () => decision.rules.rules.policy,
    batch: batch ? { max: batch.max, withinMs: batch.within } : undefined,
    now: () => decision.clock.now(),
    onExpired,
    onSent: () => {
      metrics.upstreamSent.inc();
      metrics.outboxDepth.set(store.outbox.size);
      metrics.outboxBytes.set(store.outbox.bytes);
    },
    onConnectionChange: (up) => metrics.upstreamConnected.set(up ? 1 : 0),
    subscriptions: () => [...routes.keys()],
    telemetry,
    onMessage: (message) => {
      const handler = routes.get(message.topic);
      if (handler) return handler(message.payload, message);
      logger.warn({ topic: message.topic }, 'message from the cloud on a topic nothing handles; dropped');
    },
  });
  decision.onForward((t) => {
    if (telemetry.offer(t)) uplink.kick();
  });
  return uplink;
}
