import type { Logger } from 'pino';
import type { EngineOptions } from '../engine/index.js';
import type { LoadResult, RuleSet } from '../rules/index.js';
import { formatProblem, type RuleProblem } from '../shared/index.js';
import { openBundle } from './bundle.js';
import type { BundleStore } from './bundle-store.js';
import { checkBundle } from './check-bundle.js';
import type { TrustedKey } from './keys.js';
import type { RejectReason, RulesSource, RulesStatus } from './rules-status.js';
import { swapRules, type SwapReport, type SwapTarget } from '../runtime/index.js';

/** The rules in force. */
export interface RunningRules {
  /** `bundle`: a signed bundle (from the cloud or `vigil rules apply`); `dir`: the local rules directory. */
  source: 'bundle' | 'dir';
  /** The bundle's version; 0 for the directory. */
  version: number;
  hash?: string | undefined;
  /**
   * The highest version ever applied on this gateway: no bundle at or below it is accepted, even when
   * the bundle of that version could not be used at start-up (no rollback by replay).
   */
  floor: number;
  /** The floor was reached by a group's bundle: the gateway's own bundle of the same version may replace it. */
  floorFromGroup?: boolean | undefined;
  /** The group whose bundle is in force (`vigil/groups/{group}/rules`); absent for the gateway's own. */
  group?: string | undefined;
}

/** The rules in force as an operator reads them: who signed them, since when, and the latest change looked at. */
export interface RulesInForce extends RunningRules {
  /** Id of the key that signed the bundle in force; absent for the directory (or until the stored bundle is read). */
  signer?: string;
  /** When the bundle was made (ISO 8601); absent for the directory. */
  createdAt?: string;
  /** Gateway time (ms) since when these rules run: applied, or loaded at start. */
  since: number;
  /** The latest change looked at since start, applied or rejected; absent when there was none. */
  lastChange?: RulesStatus;
}

export interface RuleSyncOptions {
  gateway: string;
  /** The keys trusted now; a function when they can change (a key list replaces them). */
  trustedKeys: readonly TrustedKey[] | (() => readonly TrustedKey[]);
  bundles: BundleStore;
  target: SwapTarget;
  engine: EngineOptions;
  initial: RunningRules;
  /** Reads and compiles the local rules directory (SIGHUP). */
  loadDir: () => Promise<LoadResult>;
  /** Hands an outcome to the uplink (`vigil/{gw}/rules/status`). */
  publish: (status: RulesStatus) => void;
  logger: Logger;
  /** Gateway time in ms. */
  now: () => number;
  /**
   * Rule changes wait for this: while recovery replays the journal through the rules loaded at start, the
   * engine must not change under it. Default: ready at once.
   */
  ready?: Promise<unknown>;
  /**
   * Carries out a swap: the gateway records it in the journal and swaps when the record is applied, between two
   * inputs. Default: at once (`swapRules` on the target).
   */
  swap?: (rules: RuleSet, from: { source: 'dir' | 'bundle'; version: number }) => Promise<SwapReport>;
  /** After a swap, with what became of each scenario (a checkpoint is due: the rules changed). */
  onApplied?: (report: SwapReport, rules: RuleSet, status: RulesStatus) => void;
}

/** How many rule problems the log line of a refusal lists; the status message has them all. */
const PROBLEMS_IN_DETAIL = 5;

/**
 * Applies rule changes one at a time, in the order they come: a bundle is verified, checked against the
 * version running, compiled whole, stored, and only then swapped in between two events. Any failure
 * leaves the running rules as they were. Every outcome is published and logged, except the bundle that
 * is already running met again (the retained message after a reconnect), which is quietly ignored.
 */
export class RuleSync {
  private current: RunningRules;
  private origin: Pick<RulesInForce, 'signer' | 'createdAt' | 'since'>;
  private last: RulesStatus | undefined;
  private queue: Promise<unknown>;
  private stopping = false;
  private signalStop = (): void => undefined;
  /** Group bundles refused as stale: a group's retained bundle met again on a reconnect is not reported again. */
  private readonly staleReported = new Set<string>();

  constructor(private readonly opts: RuleSyncOptions) {
    this.current = { ...opts.initial };
    this.origin = { since: opts.now() };
    if (opts.initial.source === 'bundle') this.readOrigin(opts.initial.hash);
    const stopped = new Promise<void>((resolve) => (this.signalStop = resolve));
    this.queue = Promise.race([opts.ready ?? Promise.resolve(), stopped]).catch(() => undefined);
  }

  private get trusted(): readonly TrustedKey[] {
    const keys = this.opts.trustedKeys;
    return typeof keys === 'function' ? keys() : keys;
  }

  get running(): Readonly<RunningRules> {
    return this.current;
  }

  get inForce(): RulesInForce {
    return { ...this.current, ...this.origin, ...(this.last ? { lastChange: this.last } : {}) };
  }

  /** The signer and date of the bundle the gateway started with, from the store; a swap meanwhile wins. */
  private readOrigin(hash: string | undefined): void {
    this.opts.bundles.current().then(
      (stored) => {
        if (stored === undefined || stored.hash !== hash || this.current.hash !== hash) return;
        const opened = openBundle(stored.bundle, this.trusted);
        if (!opened.ok) return;
        this.origin = { signer: opened.keyId, createdAt: opened.content.createdAt, since: stored.appliedAt };
      },
      (err: unknown) => this.opts.logger.warn({ err }, 'the stored rules bundle could not be read'),
    );
  }

  /**
   * Checks and applies a bundle; resolves to the outcome, or undefined when it is the one running. Rejects when
   * the gateway stopped before it was looked at. `group`: the group it came for, undefined for the gateway's own.
   */
  applyBundle(
    bytes: Uint8Array,
    source: Exclude<RulesSource, 'dir'>,
    group?: string,
  ): Promise<RulesStatus | undefined> {
    return this.serially(
      () => this.tryBundle(Buffer.from(bytes), source, group),
      () => Promise.reject(new Error('the gateway is stopping: the rules bundle was not looked at')),
    );
  }

  /** SIGHUP: compiles the local rules directory and swaps it in, unless a bundle is in force. */
  reloadDir(): Promise<RulesStatus> {
    return this.serially(
      () => this.tryDir(),
      () => Promise.reject(new Error('the gateway is stopping: the rules directory was not reloaded')),
    );
  }

  /**
   * Finishes the change under way; those still waiting are dropped, their promises rejected (a bundle comes
   * again as the retained message on the next start). Changes asked for from now on are dropped too.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.signalStop();
    await this.queue;
  }

  private swap(rules: RuleSet, from: { source: 'dir' | 'bundle'; version: number }): Promise<SwapReport> {
    if (this.opts.swap) return this.opts.swap(rules, from);
    return Promise.resolve(swapRules(this.opts.target, rules, this.opts.engine));
  }

  private serially<T>(work: () => Promise<T>, dropped: () => Promise<T>): Promise<T> {
    const next = this.queue.then(() => (this.stopping ? dropped() : work()));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async tryBundle(
    bytes: Buffer,
    source: Exclude<RulesSource, 'dir'>,
    group: string | undefined,
  ): Promise<RulesStatus | undefined> {
    const verdict = checkBundle(bytes, this.trusted, this.current, group);
    if (verdict.kind === 'running') {
      this.opts.logger.debug({ version: verdict.version, source }, 'rules bundle already running; ignored');
      return undefined;
    }
    const scope = group !== undefined ? { group } : {};
    if (verdict.kind === 'reject') {
      if (verdict.problems !== undefined) {
        return this.invalid(source, verdict.version, verdict.problems, { hash: verdict.hash, ...scope });
      }
      if (verdict.reason === 'stale-version' && group !== undefined) {
        // A group's bundle superseded by a newer one is the normal case: reported once, not on every reconnect.
        if (this.staleReported.has(verdict.hash)) return undefined;
        this.staleReported.add(verdict.hash);
      }
      return this.reject(source, verdict.version, verdict.reason, verdict.detail, {
        hash: verdict.hash,
        ...scope,
      });
    }
    const { content, hash, rules } = verdict;
    const appliedAt = this.opts.now();
    try {
      await this.opts.bundles.save({ bundle: bytes, version: content.version, hash, appliedAt, group });
    } catch (err) {
      this.opts.logger.error({ err, version: content.version }, 'rules bundle could not be stored');
      return this.reject(source, content.version, 'store-failed', `not stored: ${(err as Error).message}`, {
        hash,
        ...scope,
      });
    }
    let report: SwapReport;
    try {
      report = await this.swap(rules, { source: 'bundle', version: content.version });
    } catch (err) {
      this.opts.logger.error({ err, version: content.version }, 'rules swap could not be recorded');
      return this.reject(source, content.version, 'store-failed', `not recorded: ${(err as Error).message}`, {
        hash,
        ...scope,
      });
    }
    this.current = {
      source: 'bundle',
      version: content.version,
      hash,
      floor: content.version,
      ...(group !== undefined ? { floorFromGroup: true, group } : {}),
    };
    this.origin = { signer: verdict.keyId, createdAt: content.createdAt, since: appliedAt };
    const forWhom = group !== undefined ? ` for group ${group}` : '';
    return this.applied(source, content.version, rules, report, {
      hash,
      ...scope,
      detail: `bundle version ${content.version}${forWhom} of ${content.createdAt}, signed by key ${verdict.keyId}`,
    });
  }

  private async tryDir(): Promise<RulesStatus> {
    if (this.current.source === 'bundle') {
      return this.reject(
        'dir',
        null,
        'managed-by-bundle',
        `bundle version ${this.current.version} is in force; the local rules directory applies only when no bundle is`,
        {},
      );
    }
    const loaded = await this.opts.loadDir();
    if (!loaded.ok) return this.invalid('dir', null, loaded.problems, {});
    let report: SwapReport;
    try {
      report = await this.swap(loaded.rules, { source: 'dir', version: 0 });
    } catch (err) {
      this.opts.logger.error({ err }, 'rules swap could not be recorded');
      return this.reject('dir', null, 'store-failed', `not recorded: ${(err as Error).message}`, {});
    }
    this.origin = { since: this.opts.now() };
    return this.applied('dir', null, loaded.rules, report, { detail: 'local rules directory reloaded' });
  }

  private applied(
    source: RulesSource,
    version: number | null,
    rules: RuleSet,
    report: SwapReport,
    extra: { hash?: string; group?: string; detail: string },
  ): RulesStatus {
    const { kept, changed, added, removed } = report;
    const status: RulesStatus = {
      ...this.base(source, version, 'applied'),
      detail: extra.detail,
      ...(extra.group !== undefined ? { group: extra.group } : {}),
      ...(extra.hash !== undefined ? { hash: extra.hash } : {}),
      scenarios: { kept, changed, added, removed },
    };
    this.opts.logger.info(
      {
        version,
        source,
        scenarios: rules.scenarios.length,
        kept: kept.length,
        changed,
        added,
        removed,
        timersCancelled: report.timersCancelled,
      },
      'rules applied',
    );
    this.last = status;
    this.opts.publish(status);
    this.opts.onApplied?.(report, rules, status);
    return status;
  }

  private invalid(
    source: RulesSource,
    version: number | null,
    problems: readonly RuleProblem[],
    extra: { hash?: string; group?: string },
  ): RulesStatus {
    const shown = problems.slice(0, PROBLEMS_IN_DETAIL).map(formatProblem);
    const more = problems.length > shown.length ? ` (and ${problems.length - shown.length} more)` : '';
    const detail = `${problems.length} problem${problems.length === 1 ? '' : 's'}: ${shown.join('; ')}${more}`;
    return this.reject(source, version, 'invalid-rules', detail, { ...extra, problems: [...problems] });
  }

  private reject(
    source: RulesSource,
    version: number | null,
    reason: RejectReason,
    detail: string,
    extra: { hash?: string; group?: string; problems?: RuleProblem[] },
  ): RulesStatus {
    const status: RulesStatus = {
      ...this.base(source, version, 'rejected'),
      reason,
      detail,
      ...(extra.group !== undefined ? { group: extra.group } : {}),
      ...(extra.hash !== undefined ? { hash: extra.hash } : {}),
      ...(extra.problems !== undefined ? { problems: extra.problems } : {}),
    };
    this.opts.logger.warn(
      { version, source, reason, detail, running: this.current.version },
      'rules change rejected; the running rules stay',
    );
    this.last = status;
    this.opts.publish(status);
    return status;
  }

  private base(source: RulesSource, version: number | null, status: RulesStatus['status']) {
    return {
      gateway: this.opts.gateway,
      version,
      status,
      time: new Date(this.opts.now()).toISOString(),
      source,
      running: this.current.version,
    };
  }
}
