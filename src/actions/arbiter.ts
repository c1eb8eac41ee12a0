import type { ContactPolicy, Policy } from '../rules/policy.js';
import type { Action, Candidate, Profile } from '../shared/index.js';
import { byPriority } from './priority-order.js';

/** Why a candidate was not sent. `ttl` is the uplink's, when an action waited too long in the outbox. */
export type SuppressReason = 'contact' | 'cooldown' | `exclusive:${string}` | 'ttl';

/** A candidate, with the cooldown of its scenario when the scenario sets its own. */
export interface ArbiterCandidate extends Candidate {
  /** Replaces the policy's `cooldown` for this candidate's scenario; 0 means none. */
  cooldownMs?: number;
}

/** The decision on one candidate: sent when `suppressed` is absent. */
export interface Verdict<C extends Candidate = Candidate> {
  candidate: C;
  suppressed?: SuppressReason;
}

/** Everything the arbiter remembers, as plain data (JSON- and CBOR-safe) for checkpoints. */
export interface ArbiterState {
  version: 1;
  /** Contact key → times of the latest sent, capped actions, ascending (at most `contact.max` of them). */
  contact: [key: string, sentAtMs: number[]][];
  /** Scenario with its group or actor → until when a repeat is held back. */
  cooldowns: [key: string, untilMs: number][];
  /** Actor and category → when an action of that category was last sent to it (for `exclusive`). */
  active: [actor: string, category: string, sentAtMs: number][];
}

type ProfileOf = (actor: string) => Profile | undefined;

const NO_POLICY: Policy = { exclusive: [], ttlMs: new Map() };

/** Keys built from tuples, so that no actor, group or scenario id can collide with another's. */
function keyOf(...parts: string[]): string {
  return JSON.stringify(parts);
}

function cooldownKey(action: Action): string {
  return action.group === undefined
    ? keyOf('actor', action.scenario, action.actor)
    : keyOf('group', action.scenario, action.group);
}

/**
 * Decides which candidates are sent and which are suppressed, and why. Pure: time is an argument and the
 * state is plain data (`snapshot`, `restore`).
 *
 * - Candidates of one instant are weighed one after the other, highest priority first (`byPriority`); each
 *   sees the ones sent before it.
 * - `cooldown`: a scenario is sent at most once per cooldown for the same actor, or the same group when its
 *   action has one. It runs from the last time it was *sent*. A candidate's own `cooldownMs` replaces the
 *   policy's and applies even without a policy file. The end of a cooldown is fixed when it starts, so a
 *   changed policy applies to the next one.
 * - `exclusive`: while the actor has had a sent action of category `active` within `for`, candidates of a
 *   category in `suppress` are suppressed as `exclusive:<active>`.
 * - `contact`: at most `max` sent actions per `per` for one contact key; categories in `except` are neither
 *   capped nor counted, and suppressed candidates are not counted. The key is the actor, or the value of
 *   `by` over `{ profile, actor }` (profile `{}` when unknown). When `by` fails or yields anything but a
 *   non-empty string or a number (say a device without `profile.customer`), that device is capped on its own.
 * - When several rules apply, the reason reported is the first of cooldown, exclusive, contact.
 * - Without a policy, everything is sent (in priority order), except within a scenario's own cooldown.
 */
export class Arbiter {
  private readonly policy: Policy;
  private readonly exempt: ReadonlySet<string>;
  /** Category → the longest `for` of the exclusive rules it activates. */
  private readonly activeForMs = new Map<string, number>();
  private contact = new Map<string, number[]>();
  private cooldowns = new Map<string, number>();
  private active = new Map<string, Map<string, number>>();

  constructor(policy: Policy | undefined) {
    this.policy = policy ?? NO_POLICY;
    this.exempt = new Set(this.policy.contact?.except ?? []);
    for (const rule of this.policy.exclusive) {
      this.activeForMs.set(rule.active, Math.max(rule.forMs, this.activeForMs.get(rule.active) ?? 0));
    }
  }

  /** Weighs candidates decided at one instant, in any order; verdicts come back in the order weighed. */
  decide<C extends ArbiterCandidate>(
    candidates: readonly C[],
    now: number,
    profileOf?: ProfileOf,
  ): Verdict<C>[] {
    return [...candidates].sort(byPriority).map((candidate) => {
      const suppressed = this.weigh(candidate, now, profileOf);
      return suppressed === undefined ? { candidate } : { candidate, suppressed };
    });
  }

  /** Forgets what no window can still see, so that memory stays bounded; call it now and then. */
  prune(now: number): void {
    const contact = this.policy.contact;
    for (const [key, sent] of this.contact) {
      const kept = contact ? sent.filter((at) => at > now - contact.perMs) : [];
      if (kept.length === 0) this.contact.delete(key);
      else this.contact.set(key, kept);
    }
    for (const [key, untilMs] of this.cooldowns) {
      if (untilMs <= now) this.cooldowns.delete(key);
    }
    for (const [actor, categories] of this.active) {
      for (const [category, at] of categories) {
        const forMs = this.activeForMs.get(category);
        if (forMs === undefined || at + forMs <= now) categories.delete(category);
      }
      if (categories.size === 0) this.active.delete(actor);
    }
  }

  snapshot(): ArbiterState {
    const active: ArbiterState['active'] = [];
    for (const [actor, categories] of this.active) {
      for (const [category, at] of categories) active.push([actor, category, at]);
    }
    return {
      version: 1,
      contact: [...this.contact].map(([key, sent]) => [key, [...sent]]),
      cooldowns: [...this.cooldowns],
      active,
    };
  }

  /** An arbiter with `state`, weighing against `policy` (which may differ from the one the state was built with). */
  /**
   * The same memory weighed by another policy (a rules swap): the memory moves over without a copy, and this
   * arbiter must not be used afterwards.
   */
  withPolicy(policy: Policy | undefined): Arbiter {
    const next = new Arbiter(policy);
    next.contact = this.contact;
    next.cooldowns = this.cooldowns;
    next.active = this.active;
    return next;
  }

  static restore(policy: Policy | undefined, state: ArbiterState): Arbiter {
    if (state.version !== 1) throw new Error(`unknown arbiter state version ${String(state.version)}`);
    const arbiter = new Arbiter(policy);
    for (const [key, sent] of state.contact)
      arbiter.contact.set(
        key,
        [...sent].sort((a, b) => a - b),
      );
    for (const [key, untilMs] of state.cooldowns) arbiter.cooldowns.set(key, untilMs);
    for (const [actor, category, at] of state.active) arbiter.remember(actor, category, at);
    return arbiter;
  }

  private weigh(
    candidate: ArbiterCandidate,
    now: number,
    profileOf: ProfileOf | undefined,
  ): SuppressReason | undefined {
    const { action } = candidate;
    const cooldownMs = candidate.cooldownMs ?? this.policy.cooldownMs ?? 0;
    const cooling = cooldownKey(action);
    if (cooldownMs > 0 && now < (this.cooldowns.get(cooling) ?? Number.NEGATIVE_INFINITY)) return 'cooldown';

    for (const rule of this.policy.exclusive) {
      if (!rule.suppress.includes(action.category)) continue;
      const at = this.active.get(action.actor)?.get(rule.active);
      if (at !== undefined && now < at + rule.forMs) return `exclusive:${rule.active}`;
    }

    const contact = this.policy.contact;
    let capped: { key: string; sent: number[] } | undefined;
    if (contact && !this.exempt.has(action.category)) {
      const key = this.contactKey(contact, action.actor, profileOf);
      const sent = (this.contact.get(key) ?? []).filter((at) => at > now - contact.perMs);
      if (sent.length >= contact.max) return 'contact';
      capped = { key, sent };
    }

    if (cooldownMs > 0) this.cooldowns.set(cooling, now + cooldownMs);
    if (this.activeForMs.has(action.category)) this.remember(action.actor, action.category, now);
    if (capped) {
      // Within the window and under `max` by now, so the list never holds more than `max` times. Kept
      // ascending even if time steps back (a replay, a clock correction).
      const { key, sent } = capped;
      sent.splice(sent.findLastIndex((t) => t <= now) + 1, 0, now);
      this.contact.set(key, sent);
    }
    return undefined;
  }

  private remember(actor: string, category: string, at: number): void {
    let categories = this.active.get(actor);
    if (!categories) this.active.set(actor, (categories = new Map<string, number>()));
    categories.set(category, Math.max(at, categories.get(category) ?? Number.NEGATIVE_INFINITY));
  }

  private contactKey(contact: ContactPolicy, actor: string, profileOf: ProfileOf | undefined): string {
    if (!contact.by) return keyOf('actor', actor);
    const result = contact.by.evaluate({ profile: profileOf?.(actor) ?? {}, actor });
    const value = result.ok ? result.value : undefined;
    if (typeof value === 'string' && value !== '') return keyOf('by', value);
    if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'bigint') {
      return keyOf('by', String(value));
    }
    return keyOf('actor', actor);
  }
}
