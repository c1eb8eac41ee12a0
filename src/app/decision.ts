import { join } from 'node:path';
import type { Verdict } from '../actions/index.js';
import { DeviceActivity, RecentActions } from '../dashboard/index.js';
import { TimerQueue, type EmittedInput, type Telemetry } from '../engine/index.js';
import { OrderedDelivery, type Deliver } from '../ingest/index.js';
import {
  clockNotBefore,
  DecisionLoop,
  DurableInputs,
  monotonicClock,
  Recorder,
  RulesInForce,
  rulesRecordOf,
  TimerDriver,
  type Clock,
  type JournalStorage,
  type LoopOutputs,
  type RecoveryReport,
} from '../runtime/index.js';
import type { Action, Candidate } from '../shared/index.js';
import { auditEntryOf } from '../store/index.js';
import { BundleStore, chooseStartupRules, KeyRing, type RunningRules } from '../sync/index.js';
import type { Foundation } from './foundation.js';
import type { Started } from './modules.js';

/**
 * How often housekeeping runs: the arbiter forgets what its windows no longer see, and a prune record has the engine
 * forget the groups that can no longer fire. Both look this far back, not at now.
 */
const PRUNE_EVERY_MS = 60_000;

export interface DecisionOptions {
  clock?: Clock | undefined;
  /** Where the journal and checkpoints are written (tests inject storage faults here); default the filesystem. */
  journalStorage?: JournalStorage | undefined;
  /** Sees every verdict (the demo, tests). */
  onAction?: ((action: Action, suppressed: string | undefined) => void) | undefined;
}

/** A sent decision, for the modules that carry it out; `replay` when recovery decided it again. */
export type OnSent = (candidate: Candidate, replay: boolean) => void;

/** A checkpoint was written: no recovery decides again what was decided before `replayFromAt` (gateway time). */
export type OnCheckpoint = (replayFromAt: number) => void;

/** The decision loop with its journal: inputs in, verdicts out (docs/architecture.md, "Decision loop"). */
export interface DecisionModule extends Started {
  readonly clock: Clock;
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
  /** Starts recovery, in the background: devices are served and acknowledged meanwhile. */
  recover(): Promise<RecoveryReport>;
}

export async function startDecisionLoop(base: Foundation, opts: DecisionOptions): Promise<DecisionModule> {
  const { config, logger, store } = base;
  const checkpointed: OnCheckpoint[] = [];
  const durable = await openJournal(base, opts.journalStorage, (replayFromAt) => {
    for (const handle of checkpointed) handle(replayFromAt);
  });
  const clock = opts.clock ?? startClock(durable.lastKnownAt, base);
  const { bundles, running, rules, keys } = await restoreRules(base, durable);

  // Inputs enter in arrival order per device, each with its device's profile: events, and timer firings, which
  // are inputs like events (recorded with their time, then applied in journal order).
  const deliverEvent: Deliver = (ev, profile, meta) =>
    durable.submitEvent(ev, profile, meta && meta.qos > 0 ? 'sync' : 'write', meta?.source);
  const entrance = new OrderedDelivery(store.profiles, deliverEvent, logger);
  const timers = new TimerDriver(new TimerQueue(), clock, (timer, actor, dueAt) => {
    // Stamped now, in the device's order: no later event of the device is ahead of it.
    const at = Math.max(dueAt, clock.now());
    // A firing that is not recorded (the gateway is closing) stays pending in the state: logged by the journal.
    if (actor === undefined) void durable.submitTimer(timer, at, undefined, undefined).catch(() => undefined);
    else
      void entrance
        .pushInput(actor, (profile) => durable.submitTimer(timer, at, actor, profile))
        ?.catch(() => undefined);
  });
  base.metrics.readFrom({
    pendingTimers: () => timers.pending,
    engineGroups: () => rules.engine.groupCount(),
  });
  // Profile changes from every source (import, API, cloud batches) are journaled before they are written.
  store.profiles.recordChangesWith((changes) => durable.submitProfiles(changes, clock.now()));

  const { writes, holdCheckpointsFor } = heldWrites();
  const forward = forwardEmitted(entrance, durable, holdCheckpointsFor);
  const handlers = { sent: [] as OnSent[], forwards: [] as Array<(telemetry: Telemetry) => void> };
  const recent = new RecentActions();
  const outputs = liveOutputs(base, { clock, durable, recent, ...handlers, onAction: opts.onAction });
  const loop = new DecisionLoop({ rules, scheduler: timers, outputs });

  const devices = new DeviceActivity({ now: () => clock.now() });
  const recorder = config.record !== undefined ? new Recorder(config.record, logger) : undefined;
  // Only once inputs are applied live, and only what expired a while ago: an input is applied after its time
  // (recorded first; held during a checkpoint), and must find the arbiter and the engine as they were at that time.
  // The engine's pass is journaled, so that recovery and replay prune at the same place.
  let live = false;
  const prune = setInterval(() => {
    if (!live) return;
    const at = clock.now() - PRUNE_EVERY_MS;
    rules.arbiter.prune(at);
    void durable.submitPrune(at).catch(() => undefined);
  }, PRUNE_EVERY_MS);
  prune.unref();
  let begin = (): void => undefined;
  const recovered = new Promise<void>((resolve) => (begin = resolve)).then(() =>
    durable.recover({
      loop,
      clock,
      profiles: store.profiles,
      pendingWrites: () => writes,
      forward,
      onLiveEvent: (ev) => {
        devices.observe(ev);
        recorder?.record(ev);
      },
    }),
  );
  recovered.then(
    () => (live = true),
    () => undefined,
  );

  return {
    clock,
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
    onForward: (handler) => void handlers.forwards.push(handler),
    onCheckpoint: (handler) => void checkpointed.push(handler),
    holdCheckpointsFor,
    recovered,
    recover() {
      begin();
      return recovered;
    },
    async stop() {
      clearInterval(prune);
      timers.stop();
      await entrance.drain();
      // Applies what is still recorded and waiting, then takes a last checkpoint.
      await durable.close();
      await recorder?.close();
    },
  };
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
      maxGraceMs: durability.maxGrace,
      syncIntervalMs: durability.syncInterval,
      commitWindowMs: durability.commitWindow,
      retention: { maxAgeMs: durability.retention.age, maxBytes: durability.retention.size },
    },
    onCheckpoint,
  });
}

/** Gateway time: the monotonic clock, not behind the latest time the journal and checkpoint recorded. */
function startClock(lastKnownAt: number | undefined, base: Foundation): Clock {
  const clock = monotonicClock();
  return lastKnownAt === undefined ? clock : clockNotBefore(clock, lastKnownAt, base.logger);
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
    clock: Clock;
    durable: DurableInputs;
    recent: RecentActions;
    sent: readonly OnSent[];
    forwards: ReadonlyArray<(telemetry: Telemetry) => void>;
    onAction: DecisionOptions['onAction'];
  },
): LoopOutputs {
  const { metrics, logger, audit } = base;
  const { clock, recent, sent } = deps;
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
        action.decidedAt = Math.max(action.decidedAt, clock.now());
        metrics.latency.observe(Math.max(0, action.decidedAt - action.eventAt) / 1000);
        for (const handle of sent) handle(candidate, false);
      }
      recent.decided(action, suppressed);
      audit.append(auditEntryOf(action, clock.now(), suppressed));
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
      if (!replay) metrics.eventsIn.inc({ type: metrics.eventType(event.type), source: 'engine' });
    },
    emitted: (input, replay) => deps.durable.emitted(input, replay),
    // At most once: what a replay of the journal forwards again is not sent again.
    forward(telemetry, replay) {
      if (!replay) for (const handle of deps.forwards) handle(telemetry);
    },
    pruned(groups, _at, replay) {
      if (!replay) metrics.groupsPruned.inc(groups);
    },
  };
}
