import type { ContactPolicy, Policy } from '../rules/policy.js';
import type { Action, Candidate, Expression, Profile } from '../shared/index.js';
import { joinKey, KeyedTimes } from './keyed-times.js';
import { kthSmallest } from './kth-smallest.js';
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
  version: 2;
  /**
   * A contact cap and one of its keys → times of the latest sent, capped actions, ascending (at most the `max`
   * of the cap with the longest `per` among those alike). The key is `[cap, key]` as JSON (see `capId`).
   */
  contact: [key: string, sentAtMs: number[]][];
  /** Scenario with its group or actor → until when a repeat is held back. */
  cooldowns: [key: string, untilMs: number][];
  /**
   * Who (an actor, or the value of an exclusive rule's `by`, see `scopeOf`) and category → when an action of that
   * category was last sent to them (for `exclusive`).
   */
  active: [scope: string, category: string, sentAtMs: number][];
}

/** The state before contact caps and exclusivity could be keyed by a profile field: one cap, per actor. */
export interface ArbiterStateV1 {
  version: 1;
  contact: [key: string, sentAtMs: number[]][];
  cooldowns: [key: string, untilMs: number][];
  active: [actor: string, category: string, sentAtMs: number][];
}

/**
 * The state as a checkpoint encodes it: `ArbiterState` with its long lists as iterables over a compact copy made
 * when it was taken (see `Arbiter.checkpointState`).
 */
export interface ArbiterStateLists extends Omit<ArbiterState, 'cooldowns' | 'active'> {
  cooldowns: Iterable<[key: string, untilMs: number]>;
  active: Iterable<[scope: string, category: string, sentAtMs: number]>;
}

/** A state as a checkpoint may hold it: the current version, or one `restore` still reads. */
export type SavedArbiterState = ArbiterState | ArbiterStateV1;

type ProfileOf = (actor: string) => Profile | undefined;

/**
 * The most entries the arbiter remembers by default (`limits.arbiterEntries`): about 40 bytes a cooldown or exclusive
 * entry, about 350 a contact key, so at most some 90 MB of a 512 MB gateway, and far less in practice.
 */
export const DEFAULT_ARBITER_ENTRIES = 250_000;

const NO_POLICY: Policy = { contact: [], exclusive: [], ttlMs: new Map() };

/** Keys built from tuples, so that no actor, group or scenario id can collide with another's. */
function keyOf(...parts: string[]): string {
  return JSON.stringify(parts);
}

/** The cooldown key of an action (`["actor", scenario, actor]` or `["group", scenario, group]`) as its parts. */
function cooldownOf(action: Action): { head: string; last: string } {
  return action.group === undefined
    ? { head: keyOf('actor', action.scenario), last: action.actor }
    : { head: keyOf('group', action.scenario), last: action.group };
}

/**
 * What makes two contact caps count the same sends: what they cap and how they key. Their `max` and `per` are
 * not part of it, so that a changed limit applies to the sends already counted.
 */
function capId(cap: ContactPolicy): string {
  const selector = cap.categories
    ? ['only', ...[...cap.categories].sort()]
    : ['except', ...[...cap.except].sort()];
  return JSON.stringify([...selector, cap.by?.source ?? '']);
}

/** Whether a contact cap counts and limits actions of `category`. */
export function capCovers(cap: ContactPolicy, category: string): boolean {
  return cap.categories ? cap.categories.includes(category) : !cap.except.includes(category);
}

/**
 * The key `by` gives over `{ profile, actor }`: its value when it is a non-empty string or a number, otherwise
 * (no such field, an error) the actor's own key. Undefined `by`: the actor.
 */
const ACTOR_SCOPE = keyOf('actor');

/** Who a rule keyed `by` applies to, as the parts of its key: `["actor", actor]`, or `["by", by, value]`. */
function scopePartsOf(
  by: Expression | undefined,
  actor: string,
  profileOf: ProfileOf | undefined,
): { head: string; last: string } {
  if (!by) return { head: ACTOR_SCOPE, last: actor };
  const result = by.evaluate({ profile: profileOf?.(actor) ?? {}, actor });
  const value = result.ok ? result.value : undefined;
  if (typeof value === 'string' && value !== '') return { head: keyOf('by', by.source), last: value };
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'bigint') {
    return { head: keyOf('by', by.source), last: String(value) };
  }
  return { head: ACTOR_SCOPE, last: actor };
}

function scopeOf(by: Expression | undefined, actor: string, profileOf: ProfileOf | undefined): string {
  const { head, last } = scopePartsOf(by, actor, profileOf);
  return joinKey(head, last);
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
 *   category in `suppress` are suppressed as `exclusive:<active>`. With `by` (`profile.household`), what was sent
 *   to any actor with the same key counts.
 * - `contact`: each cap allows at most `max` sent actions per `per` for one contact key, counting the categories
 *   it caps (`categories`, or all but `except`); suppressed candidates are not counted. The key is the actor, or
 *   the value of `by` over `{ profile, actor }` (profile `{}` when unknown). A candidate must pass every cap that
 *   covers its category.
 * - A `by` that fails or yields anything but a non-empty string or a number (say a device without
 *   `profile.customer`) keys that device on its own.
 * - When several rules apply, the reason reported is the first of cooldown, exclusive, contact.
 * - Without a policy, everything is sent (in priority order), except within a scenario's own cooldown.
 */
export class Arbiter {
  private readonly policy: Policy;
  /** Category → the longest `for` of the exclusive rules it activates. */
  private readonly activeForMs = new Map<string, number>();
  /** Cap id → the longest `per` of the caps alike. */
  private readonly capWindowMs = new Map<string, number>();
  /**
   * The start every contact key of a cap id has (`["<id>",`, the key being `[id, scope]` as JSON), with the cap's
   * window: a test of a few prefixes rather than parsing each of a hundred thousand keys.
   */
  private readonly capPrefixes: Array<[prefix: string, windowMs: number]> = [];
  private contact = new Map<string, number[]>();
  /** Scenario with its group or actor → until when a repeat is held back (keys kept by their parts). */
  private cooldowns = new KeyedTimes();
  /**
   * Category → who (see `scopeOf`) → when an action of that category was last sent to them. By category first: a
   * few categories, and per scope one entry rather than a map of its own (a device that went offline is remembered
   * for the exclusive rule's `for`, two hours in the shipped policy).
   */
  private active = new Map<string, KeyedTimes>();

  constructor(policy: Policy | undefined) {
    this.policy = policy ?? NO_POLICY;
    for (const rule of this.policy.exclusive) {
      this.activeForMs.set(rule.active, Math.max(rule.forMs, this.activeForMs.get(rule.active) ?? 0));
    }
    for (const cap of this.policy.contact) {
      const id = capId(cap);
      this.capWindowMs.set(id, Math.max(cap.perMs, this.capWindowMs.get(id) ?? 0));
    }
    for (const [id, windowMs] of this.capWindowMs) {
      this.capPrefixes.push([JSON.stringify([id, '']).slice(0, -3), windowMs]);
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
    for (const [key, sent] of this.contact) {
      const windowMs = this.windowOfKey(key);
      // Ascending: what a window no longer sees is at the front, and is cut there (a map's `set` for each of a hundred
      // thousand keys would cost far more).
      const gone = windowMs === undefined ? sent.length : sent.findIndex((at) => at > now - windowMs);
      if (gone === -1 || gone === sent.length) this.contact.delete(key);
      else if (gone > 0) sent.splice(0, gone);
    }
    this.cooldowns.prune((untilMs) => untilMs <= now);
    for (const [category, scopes] of this.active) {
      const forMs = this.activeForMs.get(category);
      scopes.prune((at) => forMs === undefined || at + forMs <= now);
      if (scopes.size === 0) this.active.delete(category);
    }
  }

  /** Contact keys, cooldowns and exclusive scopes remembered: what `evict` bounds. */
  get size(): number {
    let entries = this.contact.size + this.cooldowns.size;
    for (const scopes of this.active.values()) entries += scopes.size;
    return entries;
  }

  /**
   * Forgets the entries whose hold ends soonest until at most `keep` remain, and returns how many went. An entry's
   * hold ends when `prune` would forget it: a cooldown at its end, an exclusive send `for` after it, a contact key a
   * cap's window after its last send. Entries whose holds end at the same time go together, so what goes depends on
   * the memory alone, never on its order: recovery forgets what the live gateway forgot. What goes no longer holds a
   * candidate back, so a full memory can let through what the policy would have suppressed (the caller counts it).
   */
  evict(keep: number): number {
    const before = this.size;
    if (before <= keep) return 0;
    const ends = new Float64Array(before);
    let n = 0;
    for (const [key, sent] of this.contact) ends[n++] = this.contactEnd(key, sent);
    for (const until of this.cooldowns.times()) ends[n++] = until;
    for (const [category, scopes] of this.active) {
      const forMs = this.activeForMs.get(category);
      for (const at of scopes.times())
        ends[n++] = forMs === undefined ? Number.NEGATIVE_INFINITY : at + forMs;
    }
    const last = kthSmallest(ends, before - Math.max(0, keep) - 1);
    for (const [key, sent] of this.contact) if (this.contactEnd(key, sent) <= last) this.contact.delete(key);
    this.cooldowns.prune((until) => until <= last);
    for (const [category, scopes] of this.active) {
      const forMs = this.activeForMs.get(category);
      scopes.prune((at) => forMs === undefined || at + forMs <= last);
      if (scopes.size === 0) this.active.delete(category);
    }
    return before - this.size;
  }

  snapshot(): ArbiterState {
    const active: ArbiterState['active'] = [];
    for (const [category, scopes] of this.active) {
      for (const [scope, at] of scopes.entries()) active.push([scope, category, at]);
    }
    return {
      version: 2,
      contact: [...this.contact].map(([key, sent]) => [key, [...sent]]),
      cooldowns: [...this.cooldowns.entries()],
      active,
    };
  }

  /**
   * The state `snapshot` gives, its cooldowns and exclusive memory copied as typed arrays now and made into entries
   * as they are read: with a million devices remembered, the tuples all at once would be about 120 MB of heap on a
   * 512 MB gateway, the copy is about 30.
   */
  checkpointState(): ArbiterStateLists {
    const categories = [...this.active].map(
      ([category, scopes]) => [category, scopes.frozenEntries()] as const,
    );
    return {
      version: 2,
      contact: [...this.contact].map(([key, sent]) => [key, [...sent]]),
      cooldowns: this.cooldowns.frozenEntries(),
      active: {
        *[Symbol.iterator]() {
          for (const [category, scopes] of categories) {
            for (const [scope, at] of scopes) yield [scope, category, at];
          }
        },
      },
    };
  }

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

  /**
   * An arbiter with `state`, weighing against `policy` (which may differ from the one the state was built with).
   * A version 1 state (one cap, per actor) is read as the state of the policy's first cap.
   */
  static restore(policy: Policy | undefined, saved: SavedArbiterState): Arbiter {
    const state = saved.version === 1 ? fromV1(saved, policy) : saved;
    if (state.version !== 2) throw new Error(`unknown arbiter state version ${String(state.version)}`);
    const arbiter = new Arbiter(policy);
    for (const [key, sent] of state.contact) {
      arbiter.contact.set(
        key,
        [...sent].sort((a, b) => a - b),
      );
    }
    for (const [key, untilMs] of state.cooldowns) arbiter.cooldowns.setKey(key, untilMs);
    for (const [scope, category, at] of state.active) arbiter.activeIn(category).setKey(scope, at, true);
    return arbiter;
  }

  private weigh(
    candidate: ArbiterCandidate,
    now: number,
    profileOf: ProfileOf | undefined,
  ): SuppressReason | undefined {
    const { action } = candidate;
    const cooldownMs = candidate.cooldownMs ?? this.policy.cooldownMs ?? 0;
    const cooling = cooldownOf(action);
    const coolUntil = this.cooldowns.get(cooling.head, cooling.last);
    if (cooldownMs > 0 && now < (coolUntil ?? Number.NEGATIVE_INFINITY)) return 'cooldown';

    for (const rule of this.policy.exclusive) {
      if (!rule.suppress.includes(action.category)) continue;
      const scope = scopePartsOf(rule.by, action.actor, profileOf);
      const at = this.active.get(rule.active)?.get(scope.head, scope.last);
      if (at !== undefined && now < at + rule.forMs) return `exclusive:${rule.active}`;
    }

    const counted = new Map<string, number[]>();
    for (const cap of this.policy.contact) {
      if (!capCovers(cap, action.category)) continue;
      const id = capId(cap);
      const key = JSON.stringify([id, scopeOf(cap.by, action.actor, profileOf)]);
      const windowMs = this.capWindowMs.get(id) ?? cap.perMs;
      const sent = counted.get(key) ?? (this.contact.get(key) ?? []).filter((at) => at > now - windowMs);
      if (sent.filter((at) => at > now - cap.perMs).length >= cap.max) return 'contact';
      counted.set(key, sent);
    }

    if (cooldownMs > 0) this.cooldowns.set(cooling.head, cooling.last, now + cooldownMs);
    for (const rule of this.policy.exclusive) {
      if (rule.active === action.category)
        this.remember(scopePartsOf(rule.by, action.actor, profileOf), rule.active, now);
    }
    for (const [key, sent] of counted) {
      // Within the longest window of the caps alike and under its `max` by now, so the list stays bounded. Kept
      // ascending even if time steps back (a replay, a clock correction).
      sent.splice(sent.findLastIndex((t) => t <= now) + 1, 0, now);
      this.contact.set(key, sent);
    }
    return undefined;
  }

  /** When a contact key's last send leaves the longest window of its caps: -∞ when no cap of the policy counts it. */
  private contactEnd(key: string, sent: readonly number[]): number {
    const windowMs = this.windowOfKey(key);
    const latest = sent[sent.length - 1];
    return windowMs === undefined || latest === undefined ? Number.NEGATIVE_INFINITY : latest + windowMs;
  }

  /** The longest window of the caps a contact key counts for, by the start of the key (see `capPrefixes`). */
  private windowOfKey(key: string): number | undefined {
    for (const [prefix, windowMs] of this.capPrefixes) if (key.startsWith(prefix)) return windowMs;
    return undefined;
  }

  private remember(scope: { head: string; last: string }, category: string, at: number): void {
    const scopes = this.activeIn(category);
    scopes.set(
      scope.head,
      scope.last,
      Math.max(at, scopes.get(scope.head, scope.last) ?? Number.NEGATIVE_INFINITY),
    );
  }

  private activeIn(category: string): KeyedTimes {
    let scopes = this.active.get(category);
    if (!scopes) this.active.set(category, (scopes = new KeyedTimes()));
    return scopes;
  }
}

/** A version 1 state: its one cap's counts become those of the policy's first cap, its actors scopes. */
function fromV1(state: ArbiterStateV1, policy: Policy | undefined): ArbiterState {
  const first = policy?.contact[0];
  return {
    version: 2,
    contact: first ? state.contact.map(([key, sent]) => [JSON.stringify([capId(first), key]), sent]) : [],
    cooldowns: state.cooldowns,
    active: state.active.map(([actor, category, at]) => [keyOf('actor', actor), category, at]),
  };
}
