import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Labels grow with what devices send; past this many distinct event types the rest count as `other`. */
const MAX_EVENT_TYPES = 200;

/** One scenario's running totals, as the engine counts them. */
export interface ScenarioTotals {
  scenario: string;
  evaluations: number;
  matches: number;
}

/**
 * Where the families that are read at scrape time get their values: the engine counts evaluations
 * and detections itself, and counting online devices walks every known device, so neither is pushed.
 */
export interface MetricSources {
  scenarioTotals?: () => readonly ScenarioTotals[];
  devices?: () => { online: number; offline: number };
  pendingTimers?: () => number;
  /** The outbox's delivered ids: how many it holds, how many the cap dropped since start. */
  deliveredIds?: () => { held: number; dropped: number };
}

/** The gateway's Prometheus metrics, one registry per gateway so tests can run several in one process. */
export class Metrics {
  readonly registry = new Registry();
  private readonly seenTypes = new Set<string>();
  private sources: MetricSources = {};

  readonly eventsIn = new Counter({
    name: 'vigil_events_in_total',
    help: 'Events accepted by ingest, by event type and source',
    labelNames: ['type', 'source'] as const,
    registers: [this.registry],
  });
  readonly ingestRejects = new Counter({
    name: 'vigil_ingest_rejects_total',
    help: 'Publishes refused by ingest, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly engineErrors = new Counter({
    name: 'vigil_scenario_errors_total',
    help: 'Expressions that could not be evaluated, by scenario and stage',
    labelNames: ['scenario', 'stage'] as const,
    registers: [this.registry],
  });
  readonly actionsDecided = new Counter({
    name: 'vigil_actions_decided_total',
    help: 'Actions decided and sent, by scenario',
    labelNames: ['scenario'] as const,
    registers: [this.registry],
  });
  readonly actionsSuppressed = new Counter({
    name: 'vigil_actions_suppressed_total',
    help: 'Candidate actions suppressed by the policy, by scenario and reason',
    labelNames: ['scenario', 'reason'] as const,
    registers: [this.registry],
  });
  readonly commandsSent = new Counter({
    name: 'vigil_device_commands_total',
    help: 'Commands published to devices on the local broker',
    registers: [this.registry],
  });
  readonly outboxDropped = new Counter({
    name: 'vigil_outbox_dropped_total',
    help: 'Actions dropped from the full outbox (lowest priority, oldest first)',
    labelNames: ['scenario'] as const,
    registers: [this.registry],
  });
  readonly outboxErrors = new Counter({
    name: 'vigil_outbox_write_errors_total',
    help: 'Actions that could not be written to the outbox',
    registers: [this.registry],
  });
  readonly outboxRedeliverySkipped = new Counter({
    name: 'vigil_outbox_redelivery_skipped_total',
    help: 'Actions decided again (by recovery) that were not sent again: the cloud had acknowledged them',
    registers: [this.registry],
  });
  readonly outboxDeliveredIds: Gauge = new Gauge({
    name: 'vigil_outbox_delivered_ids',
    help: 'Ids of actions the cloud acknowledged, remembered so that recovery does not send them again',
    registers: [this.registry],
    collect: () => {
      const delivered = this.sources.deliveredIds?.();
      if (delivered !== undefined) this.outboxDeliveredIds.set(delivered.held);
    },
  });
  readonly outboxDeliveredDropped: Counter = new Counter({
    name: 'vigil_outbox_delivered_dropped_total',
    help: 'Delivered ids forgotten early because outbox.maxDelivered was reached (oldest first)',
    registers: [this.registry],
    collect: () => {
      const delivered = this.sources.deliveredIds?.();
      if (delivered === undefined) return;
      this.outboxDeliveredDropped.reset();
      this.outboxDeliveredDropped.inc(delivered.dropped);
    },
  });
  readonly upstreamSent = new Counter({
    name: 'vigil_upstream_actions_sent_total',
    help: 'Actions acknowledged by the upstream broker',
    registers: [this.registry],
  });
  readonly outboxDepth = new Gauge({
    name: 'vigil_outbox_depth',
    help: 'Actions waiting in the outbox',
    registers: [this.registry],
  });
  readonly outboxBytes = new Gauge({
    name: 'vigil_outbox_bytes',
    help: 'Bytes of actions waiting in the outbox',
    registers: [this.registry],
  });
  readonly upstreamConnected = new Gauge({
    name: 'vigil_upstream_connected',
    help: '1 while the upstream broker connection is up',
    registers: [this.registry],
  });
  readonly devicesConnected = new Gauge({
    name: 'vigil_devices_connected',
    help: 'MQTT clients connected to the embedded broker',
    registers: [this.registry],
  });
  readonly pendingTimers: Gauge = new Gauge({
    name: 'vigil_pending_timers',
    help: 'Scenario timers waiting for their deadline',
    registers: [this.registry],
    collect: () => {
      const pending = this.sources.pendingTimers?.();
      if (pending !== undefined) this.pendingTimers.set(pending);
    },
  });
  readonly authRefusals = new Counter({
    name: 'vigil_auth_refusals_total',
    help: 'Device connections refused by authentication, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly aclRefusals = new Counter({
    name: 'vigil_acl_refusals_total',
    help: 'Publishes and subscriptions refused by the access control list, by action',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });
  readonly limitHits = new Counter({
    name: 'vigil_mqtt_limit_hits_total',
    help: 'MQTT limits hit, by limit: publishes dropped over the rate, devices disconnected for it, topics too long or too deep, packets too large, connections over the maximum',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  readonly protocolErrors = new Counter({
    name: 'vigil_mqtt_protocol_errors_total',
    help: 'MQTT connections closed for a malformed packet or a protocol violation',
    registers: [this.registry],
  });
  readonly mqttConnections = new Gauge({
    name: 'vigil_mqtt_connections',
    help: 'Connections open on the MQTT listeners, authenticated or not yet',
    registers: [this.registry],
  });
  readonly mqttPendingConnections = new Gauge({
    name: 'vigil_mqtt_pending_connections',
    help: 'Connections open on the MQTT listeners that have not completed CONNECT',
    registers: [this.registry],
  });
  readonly mqttLimits = new Gauge({
    name: 'vigil_mqtt_limit',
    help: 'The MQTT limits in force, by limit (0: off)',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  readonly scenarioEvaluations: Counter<'scenario'> = new Counter({
    name: 'vigil_scenario_evaluations_total',
    help: 'Inputs (events and timers) each scenario looked at',
    labelNames: ['scenario'] as const,
    registers: [this.registry],
    collect: () => this.copyScenarioTotals(this.scenarioEvaluations, 'evaluations'),
  });
  readonly scenarioDetections: Counter<'scenario'> = new Counter({
    name: 'vigil_scenario_detections_total',
    help: 'Times each scenario matched (before arbitration)',
    labelNames: ['scenario'] as const,
    registers: [this.registry],
    collect: () => this.copyScenarioTotals(this.scenarioDetections, 'matches'),
  });
  readonly devicesOnline: Gauge = new Gauge({
    name: 'vigil_devices_online',
    help: 'Devices connected or heard from recently',
    registers: [this.registry],
    collect: () => {
      const counts = this.sources.devices?.();
      if (counts) this.devicesOnline.set(counts.online);
    },
  });
  readonly devicesOffline: Gauge = new Gauge({
    name: 'vigil_devices_offline',
    help: 'Devices seen since the gateway started that are neither connected nor heard from recently',
    registers: [this.registry],
    collect: () => {
      const counts = this.sources.devices?.();
      if (counts) this.devicesOffline.set(counts.offline);
    },
  });
  readonly storeBytes = new Gauge({
    name: 'vigil_leveldb_bytes',
    help: 'Approximate size of the data directory (LevelDB), sampled every few seconds',
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'vigil_event_to_action_seconds',
    help: 'Time from the triggering event (or deadline) to the decision',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });

  /** Event-loop delays, sampled every 10 ms, since start. */
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });
  readonly longestStall: Gauge = new Gauge({
    name: 'vigil_event_loop_longest_stall_seconds',
    help: 'The longest the event loop was blocked since start (sampled every 10 ms): nothing is served meanwhile',
    registers: [this.registry],
    collect: () => this.longestStall.set(this.loopDelay.max / 1e9),
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'vigil_' });
    this.loopDelay.enable();
  }

  /** Stops sampling the event loop (the gateway stopped). */
  close(): void {
    this.loopDelay.disable();
  }

  /** Sets where the scrape-time families read their values; later calls replace the sources they name. */
  readFrom(sources: MetricSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  private copyScenarioTotals(counter: Counter<'scenario'>, field: 'evaluations' | 'matches'): void {
    const totals = this.sources.scenarioTotals?.();
    if (!totals) return;
    // The engine owns these totals; a scenario reloaded with new rules starts again from 0, which
    // Prometheus reads as a counter reset.
    counter.reset();
    for (const t of totals) counter.inc({ scenario: t.scenario }, t[field]);
  }

  /** Bounds the `type` label: device-chosen topic levels must not grow the registry without end. */
  eventType(type: string): string {
    if (this.seenTypes.has(type)) return type;
    if (this.seenTypes.size >= MAX_EVENT_TYPES) return 'other';
    this.seenTypes.add(type);
    return type;
  }
}
