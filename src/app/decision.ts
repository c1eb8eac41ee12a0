import { join } from 'node:path';
import type { Verdict } from '../actions/index.js';
import { DeviceActivity, RecentActions } from '../dashboard/index.js';
import { TimerQueue, type EmittedInput } from '../engine/index.js';
import { OrderedDelivery, type Deliver } from '../ingest/index.js';
import {
  clockNotBefore,
  DecisionLoop,
  DurableInputs,
  monotonicClock,
  observeWall,
  QUIET_CHECK_MS,
  QuietRelease,
  Recorder,
  RulesInForce,
  rulesRecordOf,
  TimerDriver,
  type Clock,
  type JournalStorage,
  type InputRecord,
  type LoopOutputs,
  type ProfileLookup,
  type RecoveryDeps,
  type RecoveryReport,
  type WallState,
} from '../runtime/index.js';
import type { Action, Candidate, Profile, Telemetry } from '../shared/index.js';
import { auditEntryOf } from '../store/index.js';
import { BundleStore, chooseStartupRules, KeyRing, type RunningRules } from '../sync/index.js';
import type { Foundation } from './foundation.js';
import type { Started } from './modules.js';

/**
 * How often housekeeping runs: a prune record has the engine forget the groups that can no longer fire and the
 * arbiter what its windows no longer see. It looks this far back, not at now.
 */
const PRUNE_EVERY_MS = 60_000;

/** How often the wall clock is compared with gateway time, for a step (src/runtime/clock.ts). */
const WALL_CHECK_MS = 1_000;

export interface DecisionOptions {
  clock?: Clock | undefined;
  /**
   * The wall clock the gateway's is compared with for steps; default `Date.now`, or none when `clock` is given
   * (tests on virtual time: wall time is then gateway time).
   */
  wallNow?: (() => number) | undefined;
  /** Where the journal and checkpoints are written (tests inject storage faults here); default the filesystem. */
  journalStorage?: JournalStorage | undefined;
  /** Sees every verdict (the demo, tests). */
  onAction?: ((action: Action, suppressed: string | undefined) => void) | undefined;
}

/** A sent decision, for the modules that carry it out; `replay` when recovery decided it again. */
export type OnSent = (candidate: Candidate, replay: boolean) => void;

/** An input the loop applied live, with the profile it was applied with. */
export type AfterLive = (input: InputRecord, profile: Profile | undefined) => void;

/** A checkpoint was written: no recovery decides again what was decided before `replayFromAt` (gateway time). */
export type OnCheckpoint = (replayFromAt: number) => void;

/** The decision loop with its journal: inputs in, verdicts out (docs/architecture.md, "Decision loop"). */
export interface DecisionModule extends Started {
  /** Gateway time: monotonic, what the engine and its timers run on. */
  readonly clock: Clock;
  /** Wall time, as stamped on actions: gateway time plus the offset the journal recorded last. */
  readonly wallClock: Clock;
  readonly durable: DurableInputs;
  readonly loop: DecisionLoop;
  readonly rules: RulesInForce;
  readonly bundles: BundleStore;
  /** Which rules were in force at start: a stored bundle or the rules directory. */
  readonly running: RunningRules;
  /** The keys trusted now: the configured ones, or the latest signed key list (docs/sync.md). */
  readonly keys: KeyRing;
  /** Where device and cloud events enter: per device in arrival order, with the device's profile. */
  readonly entrance: OrderedDelivery;
  /** What the dashboard reads of the decisions and of the inputs applied live. */
  readonly recent: RecentActions;
  readonly devices: DeviceActivity;
  /** Hands every sent decision to `handler` (device commands, the outbox). */
  onSent(handler: OnSent): void;
  /** Hands every input the loop applied live, after it was journaled, to `handler` (the shadow rules). */
  afterLive(handler: AfterLive): void;
  /** Hands the telemetry scenarios forward, live only (a replay forwards nothing again), to `handler`. */
  onForward(handler: (telemetry: Telemetry) => void): void;
  /** Calls `handler` after every checkpoint written (the outbox forgets delivered ids by it). */
  onCheckpoint(handler: OnCheckpoint): void;
  /** A write that carries out a decision (the outbox's): no checkpoint forgets the input until it is done. */
  holdCheckpointsFor(write: Promise<unknown>): void;
  /**
   * Settles once `recover` brought the state up to date from the checkpoint and the journal and inputs are
   * applied live; rejects only if recovery itself failed.
   */
  readonly recovered: Promise<RecoveryReport>;
  /** A bounded queue is half full (the entrance, the record file): publishers should wait for `relieved`. */
  readonly congested: boolean;
  /** Settles once no bounded queue of the module is congested. */
  relieved(): Promise<void>;
  /**
   * Starts recovery, in the background: devices are served and acknowledged meanwhile, and while `connectionSteps`
   * (the broker's, on this thread) moves, the replay gives most of the loop to the devices connecting.
   */
  recover(connectionSteps?: () => number): Promise<RecoveryReport>;
}

/** A count that moves while devices connect (`Broker.connectionSteps`). */
type ConnectionSteps = () => number;

export async function startDecisionLoop(base: Foundation, opts: DecisionOptions): Promise<DecisionModule> {
  const { store } = base;
  const checkpointed: OnCheckpoint[] = [];
  const durable = await openJournal(base, opts.journalStorage, (replayFromAt) => {
    for (const handle of checkpointed) handle(replayFromAt);
  });
  const clock = opts.clock ?? startClock(durable.lastKnownAt, durable.recordedWall, base);
  const wallClock: Clock = { now: () => loop.wall.at(clock.now()) };
  const { bundles, running, rules, keys } = await restoreRules(base, durable);

  const recorder = openRecorder(base, durable);
  const entrance = openEntrance(base, durable, recorder);
  const timers = recordedTimers(clock, entrance, durable);
  base.metrics.readFrom({
    pendingTimers: () => timers.pending,
    engineGroups: () => rules.engine.groupCount(),
  });
  // Profile changes from every source (import, API, cloud batches) are journaled before they are written.
  store.profiles.recordChangesWith((changes) => durable.submitProfiles(changes, clock.now()));

  const { writes, holdCheckpointsFor } = heldWrites();
  const forward = forwardEmitted(entrance, durable, holdCheckpointsFor);
  const handlers = {
    sent: [] as OnSent[],
    forwards: [] as Array<(telemetry: Telemetry) => void>,
    afterLive: [] as AfterLive[],
  };
  const recent = new RecentActions();
  const outputs = liveOutputs(base, { wallClock, durable, recent, ...handlers, onAction: opts.onAction });
  const arbiterEntries = base.config.limits.arbiterEntries;
  const loop = new DecisionLoop({ rules, scheduler: timers, outputs, arbiterEntries });
  durable.bounds.measureArbiter(() => rules.arbiter.size);

  const devices = new DeviceActivity({ now: () => clock.now() });
  const housekeeping = startHousekeeping(base, durable, rules, clock);
  const quietRelease = startQuietRelease(base, durable, clock, entrance, recorder);
  let begin = (_: ConnectionSteps | undefined): void => undefined;
  const recovered = new Promise<ConnectionSteps | undefined>((resolve) => (begin = resolve)).then(
    (connectionSteps) =>
      durable.recover({
        connectionSteps,
        loop,
        clock,
        profiles: store.profiles,
        pendingWrites: () => writes,
        syncWrites: () => store.sync(),
        forward,
        ...liveHooks(devices, recorder, handlers.afterLive),
      }),
  );
  const wallNow = opts.wallNow ?? (opts.clock === undefined ? Date.now : undefined);
  const wallWatch = watchWall(base, { loop, clock, durable, wallNow });
  recovered.then(
    () => {
      housekeeping.goLive();
      quietRelease.goLive();
      wallWatch.start();
    },
    () => undefined,
  );

  return {
    clock,
    wallClock,
    durable,
    loop,
    rules,
    bundles,
    running,
    keys,
    entrance,
    recent,
    devices,
    onSent: (handler) => void handlers.sent.push(handler),
    afterLive: (handler) => void handlers.afterLive.push(handler),
    onForward: (handler) => void handlers.forwards.push(handler),
    onCheckpoint: (handler) => void checkpointed.push(handler),
    holdCheckpointsFor,
    recovered,
    get congested() {
      return entrance.congested || recorder?.congested === true;
    },
    relieved: () => recorder?.relieved() ?? Promise.resolve(),
    recover(steps) {
      begin(steps);
      return recovered;
    },
    async stop() {
      housekeeping.stop();
      quietRelease.stop();
      wallWatch.stop();
      timers.stop();
      await entrance.drain();
      // Applies what is still recorded and waiting, then takes a last checkpoint.
      await durable.close();
      await recorder?.close();
    },
  };
}

/** What the live loop hands on (not the replay): events to the dashboard and the record file, inputs to `afterLive`. */
function liveHooks(
  devices: DeviceActivity,
  recorder: Recorder | undefined,
  afterLive: readonly AfterLive[],
): Pick<RecoveryDeps, 'onLiveEvent' | 'afterLive'> {
  return {
    onLiveEvent: (ev) => {
      devices.observe(ev);
      recorder?.record(ev);
    },
    afterLive: (input, profile) => {
      for (let i = 0; i < afterLive.length; i++) afterLive[i]?.(input, profile);
    },
  };
}

/**
 * Inputs enter in arrival order per device, each with its device's profile: events, and timer firings, which are
 * inputs like events (recorded with their time, then applied in journal order). Bounded by `limits.ingestQueue`.
 */
function openEntrance(
  base: Foundation,
  durable: DurableInputs,
  recorder: Recorder | undefined,
): OrderedDelivery {
  // Whether a QoS 0 publisher waits for its record: as the device edge's `heldBack` decides, and while profile reads
  // are pending (the entrance's queue hands on what its caller may wait for).
  const waits = (): boolean =>
    entrance.congested || recorder?.congested === true || durable.congested || entrance.reading;
  const deliverEvent: Deliver = (ev, profile, meta) =>
    meta?.waitsOnlyIfCongested === true && ev.source === 'device'
      ? durable.submitUnawaited(ev, profile, waits)
      : durable.submitEvent(ev, profile, meta && meta.qos > 0 ? 'sync' : 'write', meta?.source);
  const entrance = new OrderedDelivery(base.store.profiles, deliverEvent, base.logger, {
    maxQueued: base.config.limits.ingestQueue,
    onRefused: () => durable.bounds.refused.inc({ queue: 'ingest' }),
  });
  durable.bounds.measure('ingest', () => entrance.queued);
  return entrance;
}

/** Real timers whose firings are inputs: recorded in the device's order, then applied like any other input. */
function recordedTimers(clock: Clock, entrance: OrderedDelivery, durable: DurableInputs): TimerDriver {
  return new TimerDriver(new TimerQueue(), clock, (timer, actor, dueAt) => {
    // Stamped now, in the device's order: no later event of the device is ahead of it.
    const at = Math.max(dueAt, clock.now());
    // A firing that is not recorded (the gateway is closing) stays pending in the state: logged by the journal.
    if (actor === undefined) void durable.submitTimer(timer, at, undefined, undefined).catch(() => undefined);
    else
      void entrance
        .pushInput(actor, (profile) => durable.submitTimer(timer, at, actor, profile))
        ?.catch(() => undefined);
  });
}

/**
 * Every minute, once inputs are applied live, and only what expired a while ago: an input is applied after its time
 * (recorded first), and must find the arbiter and the engine as they were at that time.
 * The pass is journaled, so that recovery and replay prune the engine and the arbiter at the same place.
 */
function startHousekeeping(
  base: Foundation,
  durable: DurableInputs,
  rules: RulesInForce,
  clock: Clock,
): { goLive(): void; stop(): void } {
  let live = false;
  let forgetting: Promise<unknown> | undefined;
  const prune = setInterval(() => {
    if (!live) return;
    const at = clock.now() - PRUNE_EVERY_MS;
    if (forgetting !== undefined) {
      void durable.submitPrune(at).catch(() => undefined);
      return;
    }
    // The devices whose last-seen time goes are in the pass's record: recovery and replay forget the same ones.
    forgetting = unneededLastSeen(durable, rules, base.store.profiles, at)
      .catch((err: unknown): string[] => {
        base.logger.warn({ err }, 'last-seen times not pruned');
        return [];
      })
      .then((forget) => durable.submitPrune(at, forget))
      .catch(() => undefined)
      .finally(() => (forgetting = undefined));
  }, PRUNE_EVERY_MS);
  prune.unref();
  return {
    goLive: () => void (live = true),
    stop: () => clearInterval(prune),
  };
}

/**
 * Once live, V8's unused memory is given back when a busier gateway has gone quiet (`limits.releaseWhenQuiet`, see
 * `QuietRelease`): logged with the RSS before and after, and counted in /metrics.
 */
function startQuietRelease(
  base: Foundation,
  durable: DurableInputs,
  clock: Clock,
  entrance: OrderedDelivery,
  recorder: Recorder | undefined,
): { goLive(): void; stop(): void } {
  const quietMs = base.config.limits.releaseWhenQuiet;
  const release = new QuietRelease({
    quietMs,
    inputs: () => durable.appliedThrough,
    busy: () => entrance.congested || recorder?.congested === true || durable.congested,
    now: () => clock.now(),
    // The checkpoint owed is taken first: after the collection, its allocations would take back what it gave up.
    beforeRelease: () => durable.checkpointIfOwed(),
  });
  const mb = (bytes: number): number => Math.round(bytes / 104_857.6) / 10;
  let check: NodeJS.Timeout | undefined;
  return {
    goLive() {
      if (quietMs <= 0 || check !== undefined) return;
      check = setInterval(
        () => {
          const report = release.check();
          if (report === undefined) return;
          const { before, after, pauseMs } = report;
          const { metrics, logger } = base;
          metrics.memoryReleases.inc();
          metrics.memoryReleased.inc(Math.max(0, before.rss - after.rss));
          metrics.memoryReleasePause.inc(pauseMs / 1_000);
          logger.info(
            {
              rssMB: mb(before.rss),
              rssAfterMB: mb(after.rss),
              heapUsedMB: mb(before.heapUsed),
              heapUsedAfterMB: mb(after.heapUsed),
              heapTotalMB: mb(before.heapTotal),
              heapTotalAfterMB: mb(after.heapTotal),
              externalMB: mb(before.external),
              externalAfterMB: mb(after.external),
              pauseMs: Math.round(pauseMs),
            },
            `quiet: memory given back, RSS ${mb(before.rss)} → ${mb(after.rss)} MB in ${Math.round(pauseMs)} ms`,
          );
        },
        Math.min(QUIET_CHECK_MS, Math.max(100, quietMs / 4)),
      );
      check.unref();
    },
    stop: () => clearInterval(check),
  };
}

/** How often a full arbiter memory is logged, at most (gateway time). */
const EVICTIONS_LOGGED_EVERY_MS = 60_000;

/**
 * Counts what the arbiter forgot over its bound, and says so in the log at most once a minute: each entry forgotten
 * early may let through an action the policy would have suppressed. Replays forget what the live run counted.
 */
function arbiterEvictions(
  base: Foundation,
  durable: DurableInputs,
): (entries: number, at: number, replay: boolean) => void {
  let unlogged = 0;
  let loggedAt = Number.NEGATIVE_INFINITY;
  return (entries, at, replay) => {
    if (replay) return;
    durable.bounds.arbiterEvicted.inc(entries);
    unlogged += entries;
    if (at - loggedAt < EVICTIONS_LOGGED_EVERY_MS) return;
    base.logger.warn(
      { evicted: unlogged, limit: base.config.limits.arbiterEntries },
      'arbiter memory full (limits.arbiterEntries): cooldowns, exclusive sends and contact counts that ended soonest were forgotten early',
    );
    unlogged = 0;
    loggedAt = at;
  };
}

/** The `record` file, when configured, bounded by `limits.recorderBytes`. */
function openRecorder(base: Foundation, durable: DurableInputs): Recorder | undefined {
  const { config, logger } = base;
  if (config.record === undefined) return undefined;
  const recorder = new Recorder(config.record, logger, {
    maxBytes: config.limits.recorderBytes,
    onRefused: () => durable.bounds.refused.inc({ queue: 'recorder' }),
  });
  durable.bounds.measure('recorder', () => recorder.pendingBytes);
  return recorder;
}

/**
 * The devices seen last before `at` whose last-seen time is no longer needed: not connected, not awaited by a pending
 * timer (a silence), not known to the profile store.
 */
function unneededLastSeen(
  durable: DurableInputs,
  rules: RulesInForce,
  profiles: ProfileLookup,
  at: number,
): Promise<string[]> {
  const waitedOn = (actor: string): boolean => rules.engine.waitsOn(actor);
  const known = (actor: string): boolean | Promise<boolean> => {
    const cached = profiles.peek(actor);
    if (cached.hit) return cached.profile !== undefined;
    return profiles.get(actor).then(
      (profile) => profile !== undefined,
      () => true,
    );
  };
  return durable.unneededLastSeen({ waitedOn, known }, at);
}

/** The writes that carry out decisions, which no checkpoint may overtake (see `holdCheckpointsFor`). */
function heldWrites(): {
  writes: Set<Promise<unknown>>;
  holdCheckpointsFor: (write: Promise<unknown>) => void;
} {
  const writes = new Set<Promise<unknown>>();
  return {
    writes,
    holdCheckpointsFor(write) {
      writes.add(write);
      // A write that gave up (the gateway stopping while the disk is full) stays: every checkpoint after it fails,
      // so the journal keeps the input that decided it and the next start decides it again.
      write.then(
        () => writes.delete(write),
        () => undefined,
      );
    },
  };
}

/**
 * An event emitted for another actor enters through that actor's entrance, in its order and with its profile (read
 * from LevelDB when not cached), and is recorded before it is applied. A checkpoint waits for it: the input that
 * emitted it may be forgotten only once it is recorded.
 */
function forwardEmitted(
  entrance: OrderedDelivery,
  durable: DurableInputs,
  holdCheckpointsFor: (write: Promise<unknown>) => void,
): (input: EmittedInput) => void {
  return (input) => {
    const submitted = entrance.pushInput(input.event.actor, (profile) =>
      durable.submitEmitted(input, profile),
    );
    if (submitted !== undefined) holdCheckpointsFor(submitted);
  };
}

/** The journal and checkpoints in the data directory, with the configuration's durability settings. */
function openJournal(
  base: Foundation,
  storage: JournalStorage | undefined,
  onCheckpoint: OnCheckpoint,
): Promise<DurableInputs> {
  const { durability } = base.config;
  return DurableInputs.open({
    dir: join(base.dataDir, 'journal'),
    logger: base.logger,
    registry: base.metrics.registry,
    storage,
    settings: {
      checkpointIntervalMs: durability.checkpointInterval,
      checkpointRecords: durability.checkpointRecords,
      replayRecords: durability.replayRecords,
      maxGraceMs: durability.maxGrace,
      syncIntervalMs: durability.syncInterval,
      commitWindowMs: durability.commitWindow,
      retention: { maxAgeMs: durability.retention.age, maxBytes: durability.retention.size },
    },
    limits: { maxHeld: base.config.limits.held, maxLastSeen: base.config.limits.lastSeen },
    onCheckpoint,
  });
}

/**
 * Gateway time: the monotonic clock, on the timeline the journal and checkpoint recorded (wall time less the offset
 * recorded last), and not behind the latest time they hold.
 */
function startClock(lastKnownAt: number | undefined, wall: WallState | undefined, base: Foundation): Clock {
  const clock = monotonicClock(wall?.offsetMs ?? 0);
  return lastKnownAt === undefined ? clock : clockNotBefore(clock, lastKnownAt, base.logger);
}

/**
 * Compares the wall clock with gateway time at start and, once live, every `WALL_CHECK_MS`: a step, or the clock
 * becoming synchronised, is recorded in the journal (and stamps the actions decided after it).
 */
function watchWall(
  base: Foundation,
  deps: { loop: DecisionLoop; clock: Clock; durable: DurableInputs; wallNow: (() => number) | undefined },
): { start(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  // How the journal left it; what is recorded here is applied after the replay, before what arrives meanwhile.
  let recorded: WallState = deps.durable.recordedWall ?? { offsetMs: 0, synced: true };
  const check = () => {
    if (deps.wallNow === undefined) return;
    const change = observeWall(recorded, deps.clock.now(), deps.wallNow());
    if (change === undefined) return;
    recorded = change;
    base.logger.warn(
      { stepMs: change.stepMs, offsetMs: change.offsetMs, synced: change.synced },
      change.stepMs === 0
        ? 'wall clock synchronisation changed'
        : 'wall clock stepped: actions are stamped with the new time, timers keep theirs',
    );
    deps.durable.submitClock(change).catch(() => undefined);
  };
  // At once, before recovery: the inputs devices send while it runs are recorded after the change and stamped by it.
  check();
  return {
    start() {
      const { offsetMs, synced } = deps.loop.wall.state();
      base.metrics.clockOffset.set(offsetMs / 1_000);
      base.metrics.clockSynced.set(synced ? 1 : 0);
      check();
      timer = setInterval(check, WALL_CHECK_MS);
      timer.unref();
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * The rules in force with the engine and arbiter that continue from the checkpoint. A bundle from the cloud (or
 * `vigil rules apply`), when one is stored, comes ahead of the rules directory.
 */
async function restoreRules(
  base: Foundation,
  durable: DurableInputs,
): Promise<{ bundles: BundleStore; running: RunningRules; rules: RulesInForce; keys: KeyRing }> {
  const bundles = new BundleStore(base.store.sublevels.rules);
  // A key list applied before decides which keys the stored bundle must verify with.
  const keys = await KeyRing.open(base.store.sublevels.state, base.files.trustedKeys, base.logger);
  const startup = await chooseStartupRules({
    bundles,
    trustedKeys: keys.keys,
    dirRules: base.dirRules,
    logger: base.logger,
  });
  const { source, version } = startup.running;
  const record = rulesRecordOf(startup.rules, source, version);
  const restored = durable.restore(startup.rules, { gateway: base.gatewayId }, record);
  const rules = new RulesInForce(restored.rules, restored.engine, restored.arbiter);
  return { bundles, running: startup.running, rules, keys };
}

/** What the live gateway does with the loop's outputs: count, log, observe, and hand sent decisions on. */
function liveOutputs(
  base: Foundation,
  deps: {
    wallClock: Clock;
    durable: DurableInputs;
    recent: RecentActions;
    sent: readonly OnSent[];
    forwards: ReadonlyArray<(telemetry: Telemetry) => void>;
    onAction: DecisionOptions['onAction'];
  },
): LoopOutputs {
  const { metrics, logger, audit } = base;
  const { wallClock, recent, sent } = deps;
  return {
    verdict(verdict: Verdict<Candidate>, _now: number, replay: boolean) {
      const { candidate, suppressed } = verdict;
      const action = candidate.action;
      if (replay) {
        // Decided again from the journal: carried out again only where that is safe (see the handlers).
        if (suppressed === undefined) for (const handle of sent) handle(candidate, true);
        return;
      }
      if (suppressed !== undefined) {
        metrics.actionsSuppressed.inc({ scenario: action.scenario, reason: suppressed });
        logger.info(
          { scenario: action.scenario, actor: action.actor, reason: suppressed },
          'action suppressed',
        );
      } else {
        metrics.actionsDecided.inc({ scenario: action.scenario });
        action.decidedAt = Math.max(action.decidedAt, wallClock.now());
        metrics.latency.observe(Math.max(0, action.decidedAt - action.eventAt) / 1000);
        for (const handle of sent) handle(candidate, false);
      }
      recent.decided(action, suppressed);
      audit.append(auditEntryOf(action, wallClock.now(), suppressed));
      deps.onAction?.(action, suppressed);
    },
    error(effect, _now, replay) {
      if (replay) return;
      metrics.engineErrors.inc({ scenario: effect.scenario, stage: effect.stage });
      const fields = { scenario: effect.scenario, actor: effect.actor, stage: effect.stage };
      // A condition that cannot be evaluated is routine (a field a device did not send); a payload or emitted
      // event that cannot be made means an action or event was not sent.
      if (effect.stage === 'payload' || effect.stage === 'emit') logger.warn(fields, effect.message);
      else logger.debug(fields, effect.message);
    },
    emit(event, replay) {
      if (!replay) metrics.countEventIn(event.type, 'engine');
    },
    emitted: (input, replay) => deps.durable.emitted(input, replay),
    // At most once: what a replay of the journal forwards again is not sent again.
    forward(telemetry, replay) {
      if (!replay) for (const handle of deps.forwards) handle(telemetry);
    },
    pruned(groups, _at, replay) {
      if (!replay) metrics.groupsPruned.inc(groups);
    },
    evicted: arbiterEvictions(base, deps.durable),
    clock(record, replay) {
      if (!replay && record.stepMs !== 0) metrics.clockSteps.inc();
      metrics.clockOffset.set(record.offsetMs / 1_000);
      metrics.clockSynced.set(record.synced ? 1 : 0);
    },
  };
}
