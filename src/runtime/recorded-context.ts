import type { Logger } from 'pino';
import type { EngineOptions } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';
import type { Profile } from '../shared/index.js';
import type { DecisionLoop } from './decision-loop.js';
import type { ProfileChange, RulesRecord } from './journal-records.js';
import { rulesOfRecord } from './rules-record.js';
import { swapRules, type SwapReport } from './rules-swap.js';

/** A live swap waiting for its journal record to be applied. */
interface PendingSwap {
  rules: RuleSet;
  done: (report: SwapReport) => void;
}

/**
 * What inputs are judged by besides their own content: the profiles and the rules, as journal records of their
 * changes say they were at each point. Live, a rules record swaps the rules when it is applied, between two inputs,
 * in journal order. In a replay, profile records move an overlay over the store (each id starts from the `before`
 * of its first record), so an input is judged by the profile it was judged by then, and rules records swap the
 * rules they name.
 */
export class RecordedContext {
  /** Profiles as of the replay's position, for the ids that change in the journal being replayed. */
  private readonly overlay: Map<string, Profile | null>;
  private readonly pending = new Map<number, PendingSwap>();
  private readonly compiled = new Map<string, RuleSet>();

  constructor(
    /** The rules in force at the start of the replay (the checkpoint's), then as swapped. */
    public inForce: RulesRecord | undefined,
    profileBase: ReadonlyMap<string, Profile | null>,
    private readonly logger: Logger,
  ) {
    this.overlay = new Map(profileBase);
  }

  /** The profile of `actor` at the replay's position, when the journal recorded a change of it. */
  replayProfile(actor: string): { known: true; profile: Profile | undefined } | { known: false } {
    if (!this.overlay.has(actor)) return { known: false };
    return { known: true, profile: this.overlay.get(actor) ?? undefined };
  }

  /**
   * As `replayProfile`, without an object per call: the profile (`null` for none) when the journal recorded a change of
   * it, undefined when it did not.
   */
  recordedProfile(actor: string): Profile | null | undefined {
    return this.overlay.get(actor);
  }

  /**
   * Profiles changed while the journal tail is still replayed (recorded after it): inputs of the tail that read
   * them must see them as they were, the value before the change, unless the tail itself changed them.
   */
  changedDuringReplay(changes: readonly ProfileChange[]): void {
    for (const c of changes) if (!this.overlay.has(c.id)) this.overlay.set(c.id, c.before);
  }

  onProfiles(changes: readonly ProfileChange[], replay: boolean): void {
    if (!replay) return;
    for (const c of changes) this.overlay.set(c.id, c.after);
  }

  /** A live swap: `rules` replace those in force when the record written at `seq` is applied. */
  expectSwap(seq: number, rules: RuleSet): Promise<SwapReport> {
    return new Promise((done) => this.pending.set(seq, { rules, done }));
  }

  /** Applies a rules record: the swap it stands for, live or replayed. */
  onRules(
    seq: number,
    record: RulesRecord,
    loop: DecisionLoop,
    engineOpts: EngineOptions,
    replay: boolean,
  ): void {
    const live = this.pending.get(seq);
    this.pending.delete(seq);
    const previous = this.inForce;
    this.inForce = record;
    if (previous?.hash === record.hash && live === undefined) return;
    if (!replay && live) {
      live.done(swapRules(loop, live.rules, engineOpts));
      return;
    }
    const rules = this.compile(record);
    if (rules === undefined) return;
    // Replayed: the timers are armed from the state once the replay is done.
    swapRules({ rules: loop.rules, armTimer: noop, cancelTimer: noop }, rules, engineOpts);
  }

  private compile(record: RulesRecord): RuleSet | undefined {
    const cached = this.compiled.get(record.hash);
    if (cached) return cached;
    try {
      const rules = rulesOfRecord(record);
      this.compiled.set(record.hash, rules);
      return rules;
    } catch (err) {
      this.logger.error(
        { err, hash: record.hash },
        'recorded rules cannot be compiled; the replay keeps the rules it has',
      );
      return undefined;
    }
  }
}

function noop(): void {}
