import type { Logger } from 'pino';
import type { EngineState, LiveEngineState, PendingTimer, ScenarioStats } from '../engine/index.js';
import type { Policy, Scenario } from '../rules/index.js';
import type { Clock, Metrics } from '../runtime/index.js';
import type { Profile } from '../shared/index.js';
import type { DeviceActivity } from './device-activity.js';
import { openMatchesOf, timersOf } from './device-state.js';
import { explainDevice, type DeviceExplanation } from './device-explain.js';
import { DirSizeSampler } from './dir-size.js';
import type { HistorySeries } from './history.js';
import { HistorySampler } from './history-sampler.js';
import type { SeenEvent } from './device-events.js';
import { devicePresenceOf, PresenceCounter, type DevicePresence, type Presence } from './presence.js';
import type { ActionEntry, RecentActions } from './recent-actions.js';
import { describeScenario, type ScenarioDiagram } from './scenario-diagram.js';
import { ScenarioRates, type RateHistory } from './scenario-rates.js';

/** What the dashboard reads of the engine; `Engine` provides it. */
export interface EngineView {
  readonly scenarios: readonly Scenario[];
  stats(): ScenarioStats[];
  pendingTimers(): PendingTimer[];
  /** Read for one device's open matches, on request only: it copies the engine's whole state. */
  snapshot(): EngineState;
  /** The state as the engine holds it, not copied (`vigil explain`); read at once, never across an await. */
  liveState?(): LiveEngineState;
}

export type UplinkState = 'connected' | 'disconnected' | 'none';

/** The rules in force as the page shows them; `RuleSync.inForce` provides it. */
export interface RulesView {
  source: 'bundle' | 'dir';
  /** 0 for the local rules directory. */
  version: number;
  /** The bundle's identity, the SHA-256 of its bytes. */
  hash?: string | undefined;
  /** Id of the key that signed the bundle. */
  signer?: string | undefined;
  /** When the bundle was made (ISO 8601). */
  createdAt?: string | undefined;
  /** Gateway time (ms) since when these rules run. */
  since: number;
  /** The latest rules change since start, applied or rejected. */
  lastChange?:
    | {
        status: 'applied' | 'rejected';
        version: number | null;
        reason?: string | undefined;
        detail: string;
        time: string;
        source: string;
      }
    | undefined;
}

/** Everything the dashboard reads. It only reads: nothing here changes what the gateway decides. */
export interface DashboardDeps {
  gatewayId: string;
  /** The running engine; a function, since new rules bring a new engine. */
  engine: () => EngineView;
  /** Fed by the gateway with every verdict and every action dropped unsent. */
  recent: RecentActions;
  /** Fed by the gateway with every accepted event. */
  devices: DeviceActivity;
  profile: (id: string) => Promise<Profile | undefined>;
  /** Counts the stored profiles whose id `where` keeps (for the devices never seen). */
  countProfiles: (where: (id: string) => boolean) => Promise<number>;
  outbox: { readonly size: number; readonly bytes: number; readonly oldestDecidedAt: number | undefined };
  uplink: () => UplinkState;
  /** MQTT clients connected to the embedded broker. */
  connectedClients: () => number;
  /** Timers the runtime holds for the engine. */
  pendingTimers: () => number;
  /** The rules in force; absent where nothing swaps them. */
  rulesInForce?: () => RulesView;
  /** The policy in force, which the reasons of `vigil explain` are told by; absent: none. */
  policy?: () => Policy | undefined;
  metrics: Metrics;
  /** The data directory, whose size is sampled for `vigil_leveldb_bytes`. */
  dataDir: string;
  clock: Clock;
  /** The wall clock offset the engine's calendar windows follow (`WallTime.syncedOffsetMs`); absent: 0. */
  wallOffsetMs?: () => number;
  logger: Logger;
  /** How often the page's summary and action batches go out (and the rate charts take a step). */
  tickMs?: number;
  dirSizeEveryMs?: number;
  /** How often the devices never seen are counted. */
  neverSeenEveryMs?: number;
}

/** Actions a page starts from, and the default of `/api/actions`. */
export const FIRST_ACTIONS = 50;
/** Rate charts show this many steps; `perMinute` sums the last 60 s. */
const RATE_SLOTS = 600;

/** A scenario row of `/api/scenarios` and of the page. */
export interface ScenarioRow {
  id: string;
  description: string;
  priority: number;
  category: string;
  kind: Scenario['when']['kind'];
  action: string | null;
  to: readonly string[];
  evaluations: number;
  detections: number;
  errors: number;
  /** Groups (usually devices) the scenario holds state for. */
  groups: number;
  sent: number;
  suppressed: number;
  dropped: number;
  /** Suppressed and dropped, by reason. */
  reasons: Record<string, number>;
  lastFiredAt: number | null;
  /** Detections over the last minute. */
  perMinute: number;
  /** Actions the policy suppressed over the last minute. */
  suppressedPerMinute: number;
}

/** The once-a-second message of the live stream; also the body of `/api/health` in part. */
export interface Summary {
  at: number;
  gateway: string;
  upstream: UplinkState;
  outbox: { depth: number; bytes: number };
  /** Kept for the API's readers; the page shows `presence`. */
  devices: { connected: number; online: number; offline: number; known: number };
  presence: Presence;
  pendingTimers: number;
  /** Suppressed and dropped actions of every scenario, by reason. */
  reasons: Record<string, number>;
  scenarios: ScenarioRow[];
  /** Detections per scenario in the step just taken: the next point of each rate chart. */
  step: Record<string, number>;
  /** The rules in force; null where nothing swaps them. */
  rules: RulesView | null;
}

/** `/api/scenarios/{id}`: the row, where it is defined, its diagram and its rate series. */
export interface ScenarioDetail extends ScenarioRow {
  file: string;
  line: number;
  diagram: ScenarioDiagram;
  series: { stepMs: number; detections: number[] };
}

/** `/api/devices/{id}`. */
export interface DeviceDetail {
  id: string;
  profile: Profile | null;
  lastSeenAt: number | null;
  connected: boolean;
  online: boolean;
  matches: ReturnType<typeof openMatchesOf>;
  timers: ReturnType<typeof timersOf>;
}

/** Decisions a device's page lists, newest first, found among the latest the gateway keeps. */
export const DEVICE_DECISIONS = 20;

/** `/api/devices/{id}/overview`: what a device's page shows. */
export interface DeviceOverview extends DeviceDetail {
  presence: DevicePresence;
  /** The deadline past which a device not connected is silent. */
  silentAfterMs: number;
  /** Its latest events (its own and its connections), newest first. */
  events: SeenEvent[];
  /** How many events are kept per device, and for how many recently active devices. */
  eventsKept: { perDevice: number; devices: number };
  /** Its latest decisions, newest first, at most DEVICE_DECISIONS. */
  decisions: ActionEntry[];
  /** The decisions were looked for among this many latest ones of all devices. */
  decisionsAmong: number;
}

/** The first message of the live stream: everything a page starts from. */
export interface Hello {
  history: RateHistory;
  actions: ActionEntry[];
  summary: Summary;
}

/**
 * What the dashboard shows, computed from the gateway's parts on request; no HTTP here. Also points the
 * scrape-time metrics at their sources and samples the data directory's size until `stop`.
 */
export class DashboardView {
  readonly tickMs: number;
  private readonly startedAt: number;
  private readonly rates: ScenarioRates;
  private readonly sampler: DirSizeSampler;
  private readonly history: HistorySampler;
  private readonly presence: PresenceCounter;
  private readonly perMinuteSteps: number;
  private lastStep: Record<string, number> = {};

  constructor(private readonly deps: DashboardDeps) {
    this.tickMs = deps.tickMs ?? 1_000;
    this.startedAt = deps.clock.now();
    this.rates = new ScenarioRates(this.tickMs, RATE_SLOTS);
    this.perMinuteSteps = Math.max(1, Math.round(60_000 / this.tickMs));
    deps.metrics.readFrom({
      scenarioTotals: () => deps.engine().stats(),
      devices: () => deps.devices.counts(),
    });
    this.sampler = new DirSizeSampler(
      deps.dataDir,
      (bytes) => deps.metrics.storeBytes.set(bytes),
      deps.logger,
      deps.dirSizeEveryMs,
    );
    this.sampler.start();
    this.history = new HistorySampler({
      eventsInTotal: async () => (await deps.metrics.eventsIn.get()).values.reduce((a, v) => a + v.value, 0),
      recent: deps.recent,
      outboxDepth: () => deps.outbox.size,
      outboxOldestAt: () => deps.outbox.oldestDecidedAt,
      uplink: () => ({ connected: 1, disconnected: 0, none: NaN })[deps.uplink()],
      connected: () => deps.devices.connectedCount,
    });
    this.presence = new PresenceCounter({
      devices: deps.devices,
      countProfiles: deps.countProfiles,
      now: () => deps.clock.now(),
      logger: deps.logger,
      ...(deps.neverSeenEveryMs !== undefined ? { neverSeenEveryMs: deps.neverSeenEveryMs } : {}),
    });
    this.presence.start();
  }

  /** One step of the rate charts; the page gets it with the next summary. */
  step(): void {
    const totals = this.deps
      .engine()
      .stats()
      .map((s) => ({ ...s, suppressed: this.deps.recent.tally(s.scenario).suppressed }));
    const steps = this.rates.sample(this.deps.clock.now(), totals);
    this.lastStep = Object.fromEntries(steps.map((s) => [s.scenario, s.matches]));
    this.history.tick(this.deps.clock.now()).catch((err: unknown) => {
      this.deps.logger.error({ err }, 'dashboard history step failed');
    });
  }

  /** The history of the last `rangeMs`: 5 s points up to an hour, 1 min points beyond. */
  historyOf(rangeMs: number): HistorySeries {
    return this.history.history.range(rangeMs, this.deps.clock.now());
  }

  rows(): ScenarioRow[] {
    const engine = this.deps.engine();
    const stats = new Map(engine.stats().map((s) => [s.scenario, s]));
    return engine.scenarios.map((sc) => {
      const s = stats.get(sc.id);
      const tally = this.deps.recent.tally(sc.id);
      return {
        id: sc.id,
        description: sc.description,
        priority: sc.priority,
        category: sc.category,
        kind: sc.when.kind,
        action: sc.action ?? null,
        to: sc.to,
        evaluations: s?.evaluations ?? 0,
        detections: s?.matches ?? 0,
        errors: s?.errors ?? 0,
        groups: s?.groups ?? 0,
        sent: tally.sent,
        suppressed: tally.suppressed,
        dropped: tally.dropped,
        reasons: tally.reasons,
        lastFiredAt: s?.lastFiredAt ?? null,
        perMinute: this.rates.recent(sc.id, this.perMinuteSteps),
        suppressedPerMinute: this.rates.recent(sc.id, this.perMinuteSteps, 'suppressed'),
      };
    });
  }

  summary(): Summary {
    const { deps } = this;
    const counts = deps.devices.counts();
    return {
      at: deps.clock.now(),
      gateway: deps.gatewayId,
      upstream: deps.uplink(),
      outbox: { depth: deps.outbox.size, bytes: deps.outbox.bytes },
      devices: {
        connected: deps.connectedClients(),
        online: counts.online,
        offline: counts.offline,
        known: counts.known,
      },
      presence: this.presence.presence(),
      pendingTimers: deps.pendingTimers(),
      reasons: deps.recent.reasonTotals(),
      scenarios: this.rows(),
      step: this.lastStep,
      rules: deps.rulesInForce ? rulesViewOf(deps.rulesInForce()) : null,
    };
  }

  /** Undefined for a scenario not in force. */
  scenario(id: string): ScenarioDetail | undefined {
    const sc = this.deps.engine().scenarios.find((s) => s.id === id);
    const row = this.rows().find((r) => r.id === id);
    if (!sc || !row) return undefined;
    return {
      ...row,
      file: sc.file,
      line: sc.line,
      diagram: describeScenario(sc),
      series: { stepMs: this.tickMs, detections: this.rates.history().matches[sc.id] ?? [] },
    };
  }

  /** Undefined for a device with no profile, not seen since the start, and nothing open. */
  async device(id: string): Promise<DeviceDetail | undefined> {
    const { deps } = this;
    const profile = await deps.profile(id);
    const engine = deps.engine();
    const matches = openMatchesOf(id, engine.scenarios, engine.snapshot());
    const timers = timersOf(id, engine.pendingTimers());
    const lastSeenAt = deps.devices.lastSeenAt(id) ?? null;
    const connected = deps.devices.isConnected(id);
    if (!profile && lastSeenAt === null && !connected && matches.length === 0 && timers.length === 0)
      return undefined;
    return {
      id,
      profile: profile ?? null,
      lastSeenAt,
      connected,
      online: deps.devices.isOnline(id),
      matches,
      timers,
    };
  }

  /** Undefined for a device the gateway knows nothing of: no profile, nothing seen, decided or open. */
  async overview(id: string): Promise<DeviceOverview | undefined> {
    const { devices, recent } = this.deps;
    const detail = await this.device(id);
    const events = devices.events.of(id);
    const decisions = recent
      .latest(recent.capacity)
      .filter((e) => e.action.actor === id)
      .slice(0, DEVICE_DECISIONS);
    if (!detail && events.length === 0 && decisions.length === 0) return undefined;
    return {
      ...(detail ?? {
        id,
        profile: null,
        lastSeenAt: null,
        connected: false,
        online: false,
        matches: [],
        timers: [],
      }),
      presence: devicePresenceOf(devices, id),
      silentAfterMs: devices.onlineWithinMs,
      events,
      eventsKept: { perDevice: devices.events.perDevice, devices: devices.events.maxDevices },
      decisions,
      decisionsAmong: recent.capacity,
    };
  }

  /** `/api/devices/{id}/explain`; undefined for a device the gateway knows nothing of. */
  async explain(id: string): Promise<DeviceExplanation | undefined> {
    const { deps } = this;
    const profile = await deps.profile(id);
    // From here on nothing is awaited: the engine's state is read as it is.
    const engine = deps.engine();
    const kept = deps.recent.byDevice;
    const policy = deps.policy?.();
    const scenarios = engine.scenarios;
    const cooldowns = new Map(scenarios.map((sc) => [sc.id, sc.cooldownMs]));
    const explained = explainDevice(
      id,
      deps.clock.now(),
      scenarios,
      engine.liveState?.() ?? engine.snapshot(),
      kept.of(id),
      { policy, cooldownOf: (scenario) => cooldowns.get(scenario) },
      deps.wallOffsetMs?.() ?? 0,
    );
    const known =
      profile !== undefined ||
      deps.devices.lastSeenAt(id) !== undefined ||
      deps.devices.isConnected(id) ||
      explained.scenarios.some((s) => s.groups.length > 0 || s.decisions.length > 0);
    if (!known) return undefined;
    return { ...explained, decisionsKept: { perDevice: kept.perDevice, devices: kept.maxDevices } };
  }

  /** `/api/health`. */
  health(): object {
    const s = this.summary();
    return {
      // Working offline is normal for a gateway: a down uplink degrades it, the outbox keeps the actions.
      status: s.upstream === 'disconnected' ? 'degraded' : 'ok',
      gateway: s.gateway,
      uptimeS: Math.round((s.at - this.startedAt) / 1000),
      upstream: s.upstream,
      outbox: s.outbox,
      devices: s.devices,
      presence: s.presence,
      pendingTimers: s.pendingTimers,
      scenarios: s.scenarios.length,
      dataBytes: this.sampler.bytes ?? null,
    };
  }

  hello(): Hello {
    return {
      history: this.rates.history(),
      actions: this.deps.recent.latest(FIRST_ACTIONS).reverse(),
      summary: this.summary(),
    };
  }

  stop(): void {
    this.sampler.stop();
    this.presence.stop();
  }
}

/** What the page shows of the rules in force: a rejected change's full problem list stays in the log and the status. */
function rulesViewOf(r: RulesView): RulesView {
  const { source, version, hash, signer, createdAt, since, lastChange: c } = r;
  const lastChange = c && {
    status: c.status,
    version: c.version,
    ...(c.reason !== undefined ? { reason: c.reason } : {}),
    detail: c.detail,
    time: c.time,
    source: c.source,
  };
  return { source, version, hash, signer, createdAt, since, ...(lastChange ? { lastChange } : {}) };
}
