import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Registry, collectDefaultMetrics, type Counter, type Gauge } from 'prom-client';
import { LATENCY_BUCKETS, metricFamilies } from './metric-families.js';

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
  /** Groups the scenarios hold state for. */
  engineGroups?: () => number;
  /** The outbox's delivered ids: how many it holds, how many the cap dropped since start. */
  deliveredIds?: () => { held: number; dropped: number };
  /** Reads of queued actions back from LevelDB (the outbox's read-ahead) that failed, since start. */
  outboxReadErrors?: () => number;
  /** Writes deleting actions the cloud acknowledged that failed, since start. */
  outboxDeleteErrors?: () => number;
}

/** The gateway's Prometheus metrics, one registry per gateway so tests can run several in one process. */
export class Metrics {
  readonly registry = new Registry();
  private readonly family = metricFamilies(this.registry);
  private readonly seenTypes = new Set<string>();
  /**
   * `eventsIn`'s counts by source then type, copied into it at scrape time: prom-client's `inc` with labels (bound or
   * not) hashes them into a new string on every call, once per event here.
   */
  private readonly eventsInCounts = new Map<string, Map<string, { n: number }>>();
  private sources: MetricSources = {};

  readonly eventsIn = this.family.counter(
    'vigil_events_in_total',
    'Events accepted by ingest, by event type and source',
    { labels: ['type', 'source'], collect: () => this.copyEventsIn() },
  );
  readonly ingestRejects = this.family.counter(
    'vigil_ingest_rejects_total',
    'Publishes refused by ingest, by reason',
    { labels: ['reason'] },
  );
  readonly engineErrors = this.family.counter(
    'vigil_scenario_errors_total',
    'Expressions that could not be evaluated, by scenario and stage',
    { labels: ['scenario', 'stage'] },
  );
  readonly actionsDecided = this.family.counter(
    'vigil_actions_decided_total',
    'Actions decided and sent, by scenario',
    { labels: ['scenario'] },
  );
  readonly actionsSuppressed = this.family.counter(
    'vigil_actions_suppressed_total',
    'Candidate actions suppressed by the policy, by scenario and reason',
    { labels: ['scenario', 'reason'] },
  );
  readonly commandsSent = this.family.counter(
    'vigil_device_commands_total',
    'Commands published to devices on the local broker',
  );
  readonly outboxDropped = this.family.counter(
    'vigil_outbox_dropped_total',
    'Actions dropped from the full outbox (lowest priority, oldest first)',
    { labels: ['scenario'] },
  );
  readonly outboxErrors = this.family.counter(
    'vigil_outbox_write_errors_total',
    'Actions that could not be written to the outbox',
  );
  readonly outboxRedeliverySkipped = this.family.counter(
    'vigil_outbox_redelivery_skipped_total',
    'Actions decided again (by recovery) that were not sent again: the cloud had acknowledged them',
  );
  readonly outboxDeliveredIds: Gauge = this.family.gauge(
    'vigil_outbox_delivered_ids',
    'Ids of actions the cloud acknowledged, remembered so that recovery does not send them again',
    {
      collect: () => {
        const delivered = this.sources.deliveredIds?.();
        if (delivered !== undefined) this.outboxDeliveredIds.set(delivered.held);
      },
    },
  );
  readonly outboxDeliveredDropped: Counter = this.family.counter(
    'vigil_outbox_delivered_dropped_total',
    'Delivered ids forgotten early because outbox.maxDelivered was reached (oldest first)',
    {
      collect: () => {
        const delivered = this.sources.deliveredIds?.();
        if (delivered === undefined) return;
        this.outboxDeliveredDropped.reset();
        this.outboxDeliveredDropped.inc(delivered.dropped);
      },
    },
  );
  readonly outboxReadErrors: Counter = this.family.counter(
    'vigil_outbox_read_errors_total',
    'Reads of queued actions back from LevelDB ahead of the drain that failed (each is tried again, backing off)',
    {
      collect: () => {
        const errors = this.sources.outboxReadErrors?.();
        if (errors === undefined) return;
        this.outboxReadErrors.reset();
        this.outboxReadErrors.inc(errors);
      },
    },
  );
  readonly outboxDeleteErrors: Counter = this.family.counter(
    'vigil_outbox_delete_errors_total',
    'Writes deleting actions the cloud acknowledged from the outbox that failed (each is tried again, backing off)',
    {
      collect: () => {
        const errors = this.sources.outboxDeleteErrors?.();
        if (errors === undefined) return;
        this.outboxDeleteErrors.reset();
        this.outboxDeleteErrors.inc(errors);
      },
    },
  );
  readonly upstreamSent = this.family.counter(
    'vigil_upstream_actions_sent_total',
    'Actions acknowledged by the upstream broker',
  );
  readonly outboxDepth = this.family.gauge('vigil_outbox_depth', 'Actions waiting in the outbox');
  readonly outboxBytes = this.family.gauge('vigil_outbox_bytes', 'Bytes of actions waiting in the outbox');
  readonly upstreamConnected = this.family.gauge(
    'vigil_upstream_connected',
    '1 while the upstream broker connection is up',
  );
  readonly devicesConnected = this.family.gauge(
    'vigil_devices_connected',
    'MQTT clients connected to the embedded broker',
  );
  readonly pendingTimers: Gauge = this.family.gauge(
    'vigil_pending_timers',
    'Scenario timers waiting for their deadline',
    {
      collect: () => {
        const pending = this.sources.pendingTimers?.();
        if (pending !== undefined) this.pendingTimers.set(pending);
      },
    },
  );
  readonly engineGroups: Gauge = this.family.gauge(
    'vigil_engine_groups',
    'Groups (usually devices) the scenarios hold state for',
    {
      collect: () => {
        const groups = this.sources.engineGroups?.();
        if (groups !== undefined) this.engineGroups.set(groups);
      },
    },
  );
  readonly groupsPruned = this.family.counter(
    'vigil_engine_groups_pruned_total',
    'Groups forgotten by housekeeping because nothing can fire from them any more',
  );
  readonly memoryReleases = this.family.counter(
    'vigil_memory_releases_total',
    "Collections that gave V8's unused memory back once the gateway had gone quiet after a busier time",
  );
  readonly memoryReleased = this.family.counter(
    'vigil_memory_released_bytes_total',
    'Resident memory those collections gave back (RSS before less after)',
  );
  readonly memoryReleasePause = this.family.counter(
    'vigil_memory_release_pause_seconds_total',
    'How long those collections stopped the gateway, all together',
  );
  readonly clockSteps = this.family.counter(
    'vigil_clock_steps_total',
    'Steps of the wall clock against gateway time (an NTP correction, a clock set by hand), each a journal record',
  );
  readonly clockOffset = this.family.gauge(
    'vigil_clock_offset_seconds',
    'Wall time less gateway time: what is added to the times the engine decides on before they leave the gateway',
  );
  readonly clockSynced = this.family.gauge(
    'vigil_clock_synced',
    '1 while the wall clock is taken as synchronised (at or after the build date); actions say clockSynced: false otherwise',
  );
  readonly authRefusals = this.family.counter(
    'vigil_auth_refusals_total',
    'Device connections refused by authentication, by reason',
    { labels: ['reason'] },
  );
  readonly aclRefusals = this.family.counter(
    'vigil_acl_refusals_total',
    'Publishes and subscriptions refused by the access control list, by action',
    { labels: ['action'] },
  );
  readonly limitHits = this.family.counter(
    'vigil_mqtt_limit_hits_total',
    'MQTT limits hit, by limit: publishes dropped over the rate, devices disconnected for it, topics too long or too deep, packets too large, connections over the maximum',
    { labels: ['limit'] },
  );
  readonly protocolErrors = this.family.counter(
    'vigil_mqtt_protocol_errors_total',
    'MQTT connections closed for a malformed packet or a protocol violation',
  );
  readonly mqttConnections = this.family.gauge(
    'vigil_mqtt_connections',
    'Connections open on the MQTT listeners, authenticated or not yet',
  );
  readonly mqttPendingConnections = this.family.gauge(
    'vigil_mqtt_pending_connections',
    'Connections open on the MQTT listeners that have not completed CONNECT',
  );
  readonly mqttLimits = this.family.gauge('vigil_mqtt_limit', 'The MQTT limits in force, by limit (0: off)', {
    labels: ['limit'],
  });
  readonly scenarioEvaluations: Counter<'scenario'> = this.family.counter(
    'vigil_scenario_evaluations_total',
    'Inputs (events and timers) each scenario looked at',
    { labels: ['scenario'], collect: () => this.copyScenarioTotals(this.scenarioEvaluations, 'evaluations') },
  );
  readonly scenarioDetections: Counter<'scenario'> = this.family.counter(
    'vigil_scenario_detections_total',
    'Times each scenario matched (before arbitration)',
    { labels: ['scenario'], collect: () => this.copyScenarioTotals(this.scenarioDetections, 'matches') },
  );
  readonly devicesOnline: Gauge = this.family.gauge(
    'vigil_devices_online',
    'Devices connected or heard from recently',
    {
      collect: () => {
        const counts = this.sources.devices?.();
        if (counts) this.devicesOnline.set(counts.online);
      },
    },
  );
  readonly devicesOffline: Gauge = this.family.gauge(
    'vigil_devices_offline',
    'Devices seen since the gateway started that are neither connected nor heard from recently',
    {
      collect: () => {
        const counts = this.sources.devices?.();
        if (counts) this.devicesOffline.set(counts.offline);
      },
    },
  );
  readonly storeBytes = this.family.gauge(
    'vigil_leveldb_bytes',
    'Approximate size of the data directory (LevelDB), sampled every few seconds',
  );
  readonly latency = this.family.histogram(
    'vigil_event_to_action_seconds',
    'Time from the triggering event (or deadline) to the decision',
    LATENCY_BUCKETS,
  );

  /** Event-loop delays, sampled every 10 ms, since start. */
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });
  readonly longestStall: Gauge = this.family.gauge(
    'vigil_event_loop_longest_stall_seconds',
    'The longest the event loop was blocked since start (sampled every 10 ms): nothing is served meanwhile',
    { collect: () => this.longestStall.set(this.loopDelay.max / 1e9) },
  );

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

  /** Counts an accepted event in `vigil_events_in_total` (its type bounded as `eventType` bounds it). */
  countEventIn(type: string, source: string): void {
    let bySource = this.eventsInCounts.get(source);
    if (bySource === undefined) {
      bySource = new Map();
      this.eventsInCounts.set(source, bySource);
    }
    const count = bySource.get(type);
    if (count !== undefined) {
      count.n++;
      return;
    }
    const label = this.eventType(type);
    // Types past the bound all count under `other`, so the map stays as bounded as the label.
    const shared = label === type ? undefined : bySource.get(label);
    if (shared !== undefined) shared.n++;
    else bySource.set(label, { n: 1 });
  }

  private copyEventsIn(): void {
    this.eventsIn.reset();
    for (const [source, byType] of this.eventsInCounts) {
      for (const [type, { n }] of byType) this.eventsIn.inc({ type, source }, n);
    }
  }

  /** Bounds the `type` label: device-chosen topic levels must not grow the registry without end. */
  eventType(type: string): string {
    if (this.seenTypes.has(type)) return type;
    if (this.seenTypes.size >= MAX_EVENT_TYPES) return 'other';
    this.seenTypes.add(type);
    return type;
  }
}
