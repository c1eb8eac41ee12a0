import type { Logger } from 'pino';
import type { EngineOptions } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';
import { rulesRecordOf, type InputRecord, type RulesInForce, type WallState } from '../runtime/index.js';
import type { Candidate, Profile, RuleProblem } from '../shared/index.js';
import { checkBundle, type BundleInForce, type RejectReason, type TrustedKey } from '../sync/index.js';
import { ShadowDiff, type DiffExample, type ScenarioDiff } from './shadow-diff.js';
import { ShadowRun } from './shadow-run.js';

/**
 * What the gateway publishes on `vigil/{gw}/shadow` (and `GET /api/shadow` answers): the shadow bundle, and what its
 * rules would have done differently from the live ones since it started.
 */
export interface ShadowReport {
  gateway: string;
  /**
   * `running`: the shadow runs (the periodic report); `promoted`: the same bundle was applied as the live rules, the
   * shadow ends with this last report; `cleared`: the retained shadow message was cleared; `rejected`: a shadow
   * bundle was refused (any shadow already running goes on).
   */
  status: 'running' | 'promoted' | 'cleared' | 'rejected';
  version: number | null;
  /** SHA-256 of the shadow bundle. */
  hash?: string;
  /** ISO 8601 gateway time of the report. */
  time: string;
  /** When the shadow started (ISO 8601). */
  since?: string;
  /** The live bundle's version the shadow was compared with last (0: the local rules directory). */
  live?: number;
  reason?: RejectReason;
  detail?: string;
  problems?: RuleProblem[];
  /** Inputs the shadow saw; those dropped because it fell behind; its evaluation errors. */
  inputs?: number;
  dropped?: number;
  errors?: number;
  totals?: ScenarioDiff;
  scenarios?: Record<string, ScenarioDiff>;
  /** The latest differences, newest first. */
  examples?: DiffExample[];
}

export interface ShadowRulesOptions {
  gateway: string;
  trustedKeys: () => readonly TrustedKey[];
  /** The live bundle: a shadow bundle must be above its version, as a live one must, so that it can be promoted. */
  running: () => BundleInForce;
  live: RulesInForce;
  /** The live loop's wall clock offset (its calendar windows follow it). */
  wall?: () => WallState;
  engine: EngineOptions;
  profileOf: (actor: string) => Profile | undefined;
  publish: (report: ShadowReport) => void;
  /** Gateway time in ms. */
  now: () => number;
  /** How often a running shadow publishes its report. */
  reportEveryMs: number;
  logger: Logger;
  /** Shadow bundles wait for this (recovery): the shadow starts from the live state, which must be current. */
  ready?: Promise<unknown>;
}

/** A decision is counted once both sides have had this long past its input to make it. */
const SETTLE_MS = 5_000;
/** How often the shadow's timers catch up with the gateway's time. */
const TICK_MS = 1_000;

interface Active {
  run: ShadowRun;
  diff: ShadowDiff;
  version: number;
  hash: string;
  /** SHA-256 of its files, as a rules record names them: how a live swap to the same rules is recognised. */
  filesHash: string;
  since: number;
}

/**
 * Shadow rules (docs/sync.md, "Shadow rules"): a signed bundle on `vigil/{gw}/rules/shadow` is checked like a live
 * one and runs beside the live rules; its actions go nowhere, and what differs is published periodically. A live
 * swap to the same files promotes it: the shadow ends with a last report.
 */
export class ShadowRules {
  private active: Active | undefined;
  private queue: Promise<unknown>;
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(private readonly opts: ShadowRulesOptions) {
    this.queue = (opts.ready ?? Promise.resolve()).catch(() => undefined);
    const tick = setInterval(() => this.active?.run.tick(opts.now() - TICK_MS), TICK_MS);
    const report = setInterval(() => this.publishRunning(), opts.reportEveryMs);
    for (const t of [tick, report]) t.unref();
    this.timers.push(tick, report);
  }

  /** A message on the shadow topic: a bundle, or empty (the retained message cleared). */
  handle(payload: Uint8Array): Promise<void> {
    const next = this.queue.then(() => {
      if (this.stopped) return;
      if (payload.length === 0) this.clear();
      else this.tryBundle(payload);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** The report as it stands, without publishing it; undefined when no shadow runs. */
  report(): ShadowReport | undefined {
    const a = this.active;
    if (a === undefined) return undefined;
    a.diff.settle(this.opts.now() - SETTLE_MS);
    return this.reportOf(a, 'running');
  }

  /** An input the live loop applied (after it was journaled), with its profile. */
  applied(input: InputRecord, profile: Profile | undefined): void {
    this.active?.run.offer(input, profile);
  }

  /** An action the live rules sent (not a recovery's repeat). */
  liveSent(candidate: Candidate): void {
    this.active?.diff.live(candidate);
  }

  /** The live rules were swapped: to the shadow's files, that promotes it. */
  liveSwapped(rules: RuleSet): void {
    const a = this.active;
    if (a === undefined || rulesRecordOf(rules, 'bundle', 0).hash !== a.filesHash) return;
    this.end(a, 'promoted', 'applied as the live rules');
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.active?.run.stop();
    this.active = undefined;
  }

  private tryBundle(bytes: Uint8Array): void {
    const verdict = checkBundle(bytes, this.opts.trustedKeys(), this.opts.running());
    const now = this.opts.now();
    if (verdict.kind === 'running') {
      // The live bundle on the shadow topic: what a promoted shadow's retained message is after the next start.
      this.opts.logger.debug({ version: verdict.version }, 'shadow bundle is the live one; ignored');
      return;
    }
    if (verdict.kind === 'reject') {
      this.opts.logger.warn(
        { version: verdict.version, reason: verdict.reason, detail: verdict.detail },
        'shadow bundle rejected',
      );
      this.opts.publish({
        gateway: this.opts.gateway,
        status: 'rejected',
        version: verdict.version,
        hash: verdict.hash,
        time: new Date(now).toISOString(),
        reason: verdict.reason,
        detail: verdict.detail,
        ...(verdict.problems ? { problems: verdict.problems } : {}),
      });
      return;
    }
    if (this.active?.hash === verdict.hash) return;
    if (this.active)
      this.end(this.active, 'cleared', `replaced by shadow version ${verdict.content.version}`);
    const diff = new ShadowDiff();
    const run = new ShadowRun({
      rules: verdict.rules,
      live: this.opts.live,
      ...(this.opts.wall ? { wall: this.opts.wall() } : {}),
      engine: this.opts.engine,
      profileOf: this.opts.profileOf,
      onSent: (candidate) => diff.shadow(candidate),
    });
    this.active = {
      run,
      diff,
      version: verdict.content.version,
      hash: verdict.hash,
      filesHash: rulesRecordOf(verdict.rules, 'bundle', 0).hash,
      since: now,
    };
    this.opts.logger.info(
      { version: verdict.content.version, scenarios: verdict.rules.scenarios.length },
      'shadow rules started',
    );
    this.publishRunning();
  }

  private clear(): void {
    if (this.active) this.end(this.active, 'cleared', 'the shadow bundle was cleared');
  }

  private end(a: Active, status: 'promoted' | 'cleared', detail: string): void {
    a.run.flush();
    a.diff.settle(Number.POSITIVE_INFINITY);
    a.run.stop();
    if (this.active === a) this.active = undefined;
    this.opts.logger.info({ version: a.version, status }, `shadow rules ${status}`);
    const report = this.reportOf(a, status);
    if (status === 'promoted') report.live = a.version;
    this.opts.publish({ ...report, detail });
  }

  private publishRunning(): void {
    const report = this.report();
    if (report !== undefined) this.opts.publish(report);
  }

  private reportOf(a: Active, status: ShadowReport['status']): ShadowReport {
    const { scenarios, totals, examples } = a.diff.report();
    return {
      gateway: this.opts.gateway,
      status,
      version: a.version,
      hash: a.hash,
      time: new Date(this.opts.now()).toISOString(),
      since: new Date(a.since).toISOString(),
      live: this.opts.running().version,
      inputs: a.run.inputs,
      dropped: a.run.dropped,
      errors: a.run.errors,
      totals,
      scenarios,
      examples,
    };
  }
}
