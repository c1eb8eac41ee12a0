import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Arbiter } from '../../src/actions/index.js';
import { Engine } from '../../src/engine/index.js';
import type { Effect, EngineOptions, EngineState, TimerQueue } from '../../src/engine/index.js';
import { compileRuleFiles, shippedRulesDir } from '../../src/rules/index.js';
import type { RuleSet } from '../../src/rules/index.js';
import { formatProblem } from '../../src/shared/index.js';
import type { Action, Event, Profile } from '../../src/shared/index.js';
import type { DecisionLoop } from '../../src/runtime/index.js';
import { RulesInForce, VirtualRun } from '../../src/runtime/index.js';

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
 * Drives an engine on virtual time through the gateway's own decision loop (no arbitration): timers due
 * strictly before an event fire first, in deadline order; `advanceTo` fires those due up to a time.
 */
export class Harness {
  readonly actions: Action[] = [];
  readonly errors: ErrorEffect[] = [];
  readonly emitted: Event[] = [];
  readonly effects: Effect[] = [];
  private run: VirtualRun;

  constructor(
    readonly rules: RuleSet,
    readonly profiles: Record<string, Profile> = {},
    readonly opts: EngineOptions = { gateway: 'gw-test' },
  ) {
    this.run = this.runFor(new Engine(rules, opts));
  }

  get engine(): Engine {
    return this.run.rules.engine;
  }

  /** The decision loop the harness drives (a rules swap's target). */
  get loop(): DecisionLoop {
    return this.run.loop;
  }

  get timers(): TimerQueue {
    return this.run.scheduler.queue;
  }

  /** Continues from a snapshot, rebuilding the pending timers from the engine's state, as a restart does. */
  restore(state: EngineState): this {
    this.run = this.runFor(Engine.restore(this.rules, this.opts, state));
    for (const t of this.engine.pendingTimers()) this.run.loop.armTimer(t.timer, t.actor, t.dueAt);
    return this;
  }

  feed(ev: EventIn): this {
    this.run.feed({ data: {}, source: 'device', ...ev });
    return this;
  }

  advanceTo(now: number): this {
    this.run.advanceTo(now);
    return this;
  }

  /** Fires one timer at a time of our choosing (a late or early runtime). */
  fire(timer: string, now: number): readonly Effect[] {
    const actor = this.engine.pendingTimers().find((t) => t.timer === timer)?.actor;
    return this.run.fire(timer, now, actor);
  }

  private runFor(engine: Engine): VirtualRun {
    const inForce = new RulesInForce(this.rules, engine, new Arbiter(this.rules.policy));
    return new VirtualRun(
      inForce,
      (actor) => this.profiles[actor],
      {
        verdict: (v) => this.actions.push(v.candidate.action),
        error: (e) => this.errors.push(e),
        emit: (ev) => this.emitted.push(ev),
        step: (effects) => this.effects.push(...effects),
      },
      false,
    );
  }
}
