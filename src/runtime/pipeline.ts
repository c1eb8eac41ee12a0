import type { Logger } from 'pino';
import type { Arbiter } from '../actions/index.js';
import type { Effect, Engine } from '../engine/index.js';
import type { Candidate, Event, Profile } from '../shared/index.js';
import type { Clock } from './clock.js';
import type { Metrics } from './metrics.js';
import type { TimerDriver } from './timer-driver.js';

export interface PipelineDeps {
  engine: Engine;
  arbiter: Arbiter;
  timers: TimerDriver;
  /** Synchronous profile lookup for policy keys (the cache); the triggering profile is passed directly. */
  cachedProfile: (actor: string) => Profile | undefined;
  /** `replay`: decided again while recovery replays the journal (the decision may have been carried out before). */
  dispatch: (candidate: Candidate, replay: boolean) => void;
  /** The real clock: a decision is stamped when it is made, which may be later than the event's arrival. */
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  /** Observers of every decision (dashboard, tests); never on the hot path's critical section. */
  onVerdict?: (candidate: Candidate, suppressed: string | undefined) => void;
}

/**
 * Runs inputs through the pure engine and arbiter and carries out what they return: timers are
 * armed or cancelled, sent actions are dispatched, suppressions and evaluation errors are counted.
 *
 * While recovery replays the journal (`replay`), the state moves exactly as it did the first time, but
 * nothing is armed (the timers are rebuilt from the state afterwards), observed or counted again; decided
 * actions are dispatched with `replay` set.
 */
export class Pipeline {
  /** Actor of every pending timer: its firing needs that device's profile. */
  private readonly timerActors = new Map<string, string>();
  private current: Engine;

  constructor(private readonly deps: PipelineDeps) {
    this.current = deps.engine;
  }

  /** The engine inputs go through. */
  get engine(): Engine {
    return this.current;
  }

  get arbiter(): Arbiter {
    return this.deps.arbiter;
  }

  /** Continues with `engine` (restored with new rules, or armed after recovery); its timers are the caller's. */
  useEngine(engine: Engine): void {
    this.current = engine;
  }

  /** Continues with `arbiter` (the same memory under a new policy, after a rules swap). */
  useArbiter(arbiter: Arbiter): void {
    this.deps.arbiter = arbiter;
  }

  onEvent(ev: Event, profile: Profile | undefined, replay = false): void {
    this.apply(this.current.onEvent(ev, profile), ev.at, ev.actor, profile, replay);
  }

  /** Arms a timer the engine's state is waiting on, for `dueAt` (its deadline, or later after a restart). */
  armTimer(key: string, actor: string, dueAt: number): void {
    this.timerActors.set(key, actor);
    this.deps.timers.schedule(key, dueAt);
    this.deps.metrics.pendingTimers.set(this.deps.timers.pending);
  }

  /** The actor whose profile a pending timer needs when it fires. */
  timerActor(key: string): string | undefined {
    return this.timerActors.get(key);
  }

  /** `actor` is whose profile the timer's firing needs, when the caller knows it better than the pipeline. */
  onTimer(key: string, now: number, profile: Profile | undefined, replay = false, actor?: string): void {
    const who = actor ?? this.timerActors.get(key) ?? '';
    if (!replay) this.timerActors.delete(key);
    this.apply(this.current.onTimer(key, now, profile), now, who, profile, replay);
  }

  private apply(
    effects: Effect[],
    now: number,
    actor: string,
    profile: Profile | undefined,
    replay: boolean,
  ): void {
    const { timers, metrics, logger } = this.deps;
    let candidates: Candidate[] | undefined;
    for (const effect of effects) {
      switch (effect.kind) {
        case 'schedule':
          if (replay) break;
          this.timerActors.set(effect.timer, effect.actor);
          timers.schedule(effect.timer, effect.dueAt);
          break;
        case 'cancel':
          if (replay) break;
          this.timerActors.delete(effect.timer);
          timers.cancel(effect.timer);
          break;
        case 'decide':
          (candidates ??= []).push(effect.candidate);
          break;
        case 'emit':
          if (!replay) metrics.eventsIn.inc({ type: metrics.eventType(effect.event.type), source: 'engine' });
          break;
        case 'error':
          if (replay) break;
          metrics.engineErrors.inc({ scenario: effect.scenario, stage: effect.stage });
          logger.debug(
            { scenario: effect.scenario, actor: effect.actor, stage: effect.stage },
            effect.message,
          );
          break;
      }
    }
    if (!replay) metrics.pendingTimers.set(timers.pending);
    if (!candidates) return;
    const profileOf = (who: string) => (who === actor ? profile : this.deps.cachedProfile(who));
    for (const verdict of this.deps.arbiter.decide(candidates, now, profileOf)) {
      const scenario = verdict.candidate.action.scenario;
      if (replay) {
        if (verdict.suppressed === undefined) this.deps.dispatch(verdict.candidate, true);
        continue;
      }
      if (verdict.suppressed !== undefined) {
        metrics.actionsSuppressed.inc({ scenario, reason: verdict.suppressed });
        logger.info(
          { scenario, actor: verdict.candidate.action.actor, reason: verdict.suppressed },
          'action suppressed',
        );
      } else {
        metrics.actionsDecided.inc({ scenario });
        const action = verdict.candidate.action;
        action.decidedAt = Math.max(action.decidedAt, this.deps.clock.now());
        metrics.latency.observe(Math.max(0, action.decidedAt - action.eventAt) / 1000);
        this.deps.dispatch(verdict.candidate, false);
      }
      this.deps.onVerdict?.(verdict.candidate, verdict.suppressed);
    }
  }
}
