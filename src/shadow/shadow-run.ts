import { Arbiter } from '../actions/index.js';
import { Engine, type EngineOptions } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';
import {
  RulesInForce,
  VirtualRun,
  type InputRecord,
  type LoopOutputs,
  type WallState,
} from '../runtime/index.js';
import type { Candidate, Profile } from '../shared/index.js';

export interface ShadowRunOptions {
  /** The shadow rules. */
  rules: RuleSet;
  /** The live rules, engine and arbiter: the shadow starts from a copy of their state. */
  live: Pick<RulesInForce, 'engine' | 'arbiter'>;
  /** The live loop's wall clock offset: calendar windows then count the same days on both sides. */
  wall?: WallState;
  engine: EngineOptions;
  /** A profile without waiting (the cache): for timers and events emitted for another actor. */
  profileOf: (actor: string) => Profile | undefined;
  /** Each action the shadow rules would have sent. */
  onSent: (candidate: Candidate) => void;
  /** Inputs waiting beyond this are dropped and counted. */
  maxQueued?: number;
  /** How many inputs one turn of the event loop applies before it yields. */
  batch?: number;
}

/** How many applied inputs may wait for the shadow before it drops them. */
const MAX_QUEUED = 50_000;
const BATCH = 1_000;

/**
 * The shadow rules' own engine and arbiter, beside the live ones and fed the same inputs after the live ones were
 * applied: a `VirtualRun` on the gateway's time, so its timers fire as it catches up with the inputs (and with
 * `tick`), never on a real timer. Its decisions go only to `onSent`; nothing of it is journaled or checkpointed.
 *
 * It starts from a copy of the live engine's state for the scenarios it has unchanged (same id and fingerprint) and
 * of the arbiter's memory, so that a scenario both sides share decides the same from the first input.
 */
export class ShadowRun {
  private readonly run: VirtualRun;
  private queue: Array<{ input: InputRecord; profile: Profile | undefined }> = [];
  private scheduled: NodeJS.Immediate | undefined;
  private current: { actor: string; profile: Profile | undefined } | undefined;
  private stopped = false;
  /** Inputs applied. */
  inputs = 0;
  /** Inputs dropped because too many were waiting. */
  dropped = 0;
  /** Expressions that could not be evaluated, and inputs the shadow engine failed on. */
  errors = 0;

  constructor(private readonly opts: ShadowRunOptions) {
    const { rules, live } = opts;
    const engine = Engine.restore(rules, opts.engine, live.engine.snapshot());
    const arbiter = Arbiter.restore(rules.policy, live.arbiter.snapshot());
    const outputs: LoopOutputs = {
      verdict: (verdict) => {
        if (verdict.suppressed === undefined) opts.onSent(verdict.candidate);
      },
      error: () => void this.errors++,
    };
    const profileOf = (actor: string): Profile | undefined =>
      actor === this.current?.actor ? this.current.profile : opts.profileOf(actor);
    this.run = new VirtualRun(new RulesInForce(rules, engine, arbiter), profileOf, outputs, true);
    if (opts.wall) this.run.loop.wall.set(opts.wall);
    for (const t of engine.pendingTimers()) this.run.loop.armTimer(t.timer, t.actor, t.dueAt);
  }

  get queued(): number {
    return this.queue.length;
  }

  /** An input the live loop applied, with the profile it was applied with. */
  offer(input: InputRecord, profile: Profile | undefined): void {
    if (this.stopped || (input.kind !== 'event' && input.kind !== 'prune' && input.kind !== 'clock')) return;
    if (this.queue.length >= (this.opts.maxQueued ?? MAX_QUEUED)) {
      this.dropped++;
      return;
    }
    this.queue.push({ input, profile });
    this.scheduled ??= setImmediate(() => this.drain());
  }

  /** Fires the shadow's timers due up to `now`, when no input waits (they would come first). */
  tick(now: number): void {
    if (this.stopped || this.queue.length > 0) return;
    this.guard(() => this.run.advanceTo(now));
  }

  /** Applies everything waiting now (tests, and a last report). */
  flush(): void {
    while (this.queue.length > 0 && !this.stopped) this.applySome(Number.POSITIVE_INFINITY);
  }

  stop(): void {
    this.stopped = true;
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.queue = [];
  }

  private drain(): void {
    this.scheduled = undefined;
    if (this.stopped) return;
    this.applySome(this.opts.batch ?? BATCH);
    if (this.queue.length > 0) this.scheduled = setImmediate(() => this.drain());
  }

  private applySome(max: number): void {
    const n = Math.min(max, this.queue.length);
    const batch = this.queue.splice(0, n);
    for (const { input, profile } of batch) {
      this.inputs++;
      this.guard(() => this.apply(input, profile));
    }
  }

  private apply(input: InputRecord, profile: Profile | undefined): void {
    if (input.kind === 'event') {
      this.current = { actor: input.event.actor, profile };
      try {
        this.run.feed(input.event);
      } finally {
        this.current = undefined;
      }
    } else if (input.kind === 'prune') {
      this.run.prune(input.at);
    } else if (input.kind === 'clock') {
      this.run.loop.onClock(input);
    }
  }

  private guard(work: () => void): void {
    try {
      work();
    } catch {
      // The shadow must never stop the live gateway; a failing input is counted in the report.
      this.errors++;
    }
  }
}
