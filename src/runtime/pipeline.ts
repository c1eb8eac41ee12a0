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
  dispatch: (candidate: Candidate) => void;
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
 */
export class Pipeline {
  /** Actor of every pending timer: its firing needs that device's profile. */
  private readonly timerActors = new Map<string, string>();

  constructor(private readonly deps: PipelineDeps) {}

  onEvent(ev: Event, profile: Profile | undefined): void {
    this.apply(this.deps.engine.onEvent(ev, profile), ev.at, ev.actor, profile);
  }

  /** The actor whose profile a pending timer needs when it fires. */
  timerActor(key: string): string | undefined {
    return this.timerActors.get(key);
  }

  onTimer(key: string, now: number, profile: Profile | undefined): void {
    const actor = this.timerActors.get(key) ?? '';
    this.timerActors.delete(key);
    this.apply(this.deps.engine.onTimer(key, now, profile), now, actor, profile);
  }

  private apply(effects: Effect[], now: number, actor: string, profile: Profile | undefined): void {
    const { timers, metrics, logger } = this.deps;
    let candidates: Candidate[] | undefined;
    for (const effect of effects) {
      switch (effect.kind) {
        case 'schedule':
          this.timerActors.set(effect.timer, effect.actor);
          timers.schedule(effect.timer, effect.dueAt);
          break;
        case 'cancel':
          this.timerActors.delete(effect.timer);
          timers.cancel(effect.timer);
          break;
        case 'decide':
          (candidates ??= []).push(effect.candidate);
          break;
        case 'emit':
          metrics.eventsIn.inc({ type: metrics.eventType(effect.event.type), source: 'engine' });
          break;
        case 'error':
          metrics.engineErrors.inc({ scenario: effect.scenario, stage: effect.stage });
          logger.debug(
            { scenario: effect.scenario, actor: effect.actor, stage: effect.stage },
            effect.message,
          );
          break;
      }
    }
    metrics.pendingTimers.set(timers.pending);
    if (!candidates) return;
    const profileOf = (who: string) => (who === actor ? profile : this.deps.cachedProfile(who));
    for (const verdict of this.deps.arbiter.decide(candidates, now, profileOf)) {
      const scenario = verdict.candidate.action.scenario;
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
        this.deps.dispatch(verdict.candidate);
      }
      this.deps.onVerdict?.(verdict.candidate, verdict.suppressed);
    }
  }
}
