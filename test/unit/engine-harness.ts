import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, TimerQueue } from '../../src/engine/index.js';
import type { Effect, EngineOptions, EngineState } from '../../src/engine/index.js';
import { compileRuleFiles, shippedRulesDir } from '../../src/rules/index.js';
import type { RuleSet } from '../../src/rules/index.js';
import { formatProblem } from '../../src/shared/index.js';
import type { Action, Event, Profile } from '../../src/shared/index.js';

/** Compiles rule files given as text; throws with every problem when they do not load. */
export function rulesFrom(files: Record<string, string>): RuleSet {
  const result = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  return result.rules;
}

/** Shipped rule files by name (`device-offline.yaml`), with the templates they may use. */
export function shipped(...names: string[]): RuleSet {
  const dir = shippedRulesDir();
  const files: Record<string, string> = {};
  for (const name of [...names, join('templates', 'threshold.yaml')])
    files[name] = readFileSync(join(dir, name), 'utf8');
  return rulesFrom(files);
}

export type ErrorEffect = Extract<Effect, { kind: 'error' }>;
export type EventIn = Pick<Event, 'actor' | 'type' | 'at'> & Partial<Event>;

/**
 * Drives an engine on virtual time the way the runtime does: timers due strictly before an event fire
 * first, in deadline order; `advanceTo` fires those due up to a time.
 */
export class Harness {
  engine: Engine;
  readonly timers = new TimerQueue();
  private readonly timerActors = new Map<string, string>();
  readonly actions: Action[] = [];
  readonly errors: ErrorEffect[] = [];
  readonly emitted: Event[] = [];
  readonly effects: Effect[] = [];

  constructor(
    readonly rules: RuleSet,
    readonly profiles: Record<string, Profile> = {},
    readonly opts: EngineOptions = { gateway: 'gw-test' },
  ) {
    this.engine = new Engine(rules, opts);
  }

  /** Continues from a snapshot, rebuilding the pending timers from the engine's state, as a restart does. */
  restore(state: EngineState): this {
    this.engine = Engine.restore(this.rules, this.opts, state);
    this.timers.clear();
    for (const t of this.engine.pendingTimers()) {
      this.timers.schedule(t.timer, t.dueAt);
      this.timerActors.set(t.timer, t.actor);
    }
    return this;
  }

  feed(ev: EventIn): this {
    this.fireUntil(ev.at, false);
    const full: Event = { data: {}, source: 'device', ...ev };
    this.apply(this.engine.onEvent(full, this.profiles[full.actor]));
    return this;
  }

  advanceTo(now: number): this {
    this.fireUntil(now, true);
    return this;
  }

  /** Fires one timer at a time of our choosing (a late or early runtime). */
  fire(timer: string, now: number): Effect[] {
    const actor = this.timerActors.get(timer);
    const effects = this.engine.onTimer(timer, now, actor === undefined ? undefined : this.profiles[actor]);
    this.apply(effects);
    return effects;
  }

  private fireUntil(limit: number, inclusive: boolean): void {
    for (;;) {
      const next = this.timers.peek();
      if (!next || next.dueAt > limit || (!inclusive && next.dueAt === limit)) return;
      this.timers.pop();
      this.fire(next.key, next.dueAt);
    }
  }

  private apply(effects: Effect[]): void {
    for (const e of effects) {
      this.effects.push(e);
      switch (e.kind) {
        case 'schedule':
          this.timers.schedule(e.timer, e.dueAt);
          this.timerActors.set(e.timer, e.actor);
          break;
        case 'cancel':
          this.timers.cancel(e.timer);
          break;
        case 'decide':
          this.actions.push(e.candidate.action);
          break;
        case 'emit':
          this.emitted.push(e.event);
          break;
        case 'error':
          this.errors.push(e);
          break;
      }
    }
  }
}
