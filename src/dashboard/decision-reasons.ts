import { formatDuration, timeText } from '../engine/index.js';
import { capCovers } from '../actions/index.js';
import type { ContactPolicy, Policy } from '../rules/index.js';
import { EXPIRED_REASON, type ActionEntry } from './recent-actions.js';

/** One decision about a device's action, with its reason in plain words. */
export interface DecisionExplanation {
  /** When it was decided. */
  at: number;
  id: string;
  scenario: string;
  action: string;
  category: string;
  verdict: 'sent' | 'suppressed' | 'expired' | 'dropped';
  /** The reason's code, as the audit log has it (`contact`, `cooldown`, `exclusive:support`, `ttl`, …). */
  reason?: string;
  /** `sent`; `suppressed by the contact cap 1 per 24h until …`; `exclusive because of a support action at …`. */
  why: string;
  /** When what held it back ends (the cooldown, the cap's window, the exclusivity), when that is known. */
  untilAt?: number;
  /** When the action it gave way to was sent (exclusivity), when that is known. */
  becauseAt?: number;
}

/** What the words of a reason are read from: the policy in force and the scenarios' own cooldowns. */
export interface ReasonContext {
  policy: Policy | undefined;
  cooldownOf: (scenario: string) => number | undefined;
}

function sentBefore(history: readonly ActionEntry[], entry: ActionEntry): ActionEntry[] {
  return history.filter((e) => e.verdict === 'sent' && e.seq < entry.seq);
}

function cooldown(
  entry: ActionEntry,
  history: readonly ActionEntry[],
  ctx: ReasonContext,
): Partial<DecisionExplanation> {
  const { action } = entry;
  const ms = ctx.cooldownOf(action.scenario) ?? ctx.policy?.cooldownMs;
  const last = sentBefore(history, entry)
    .filter((e) => e.action.scenario === action.scenario && e.action.group === action.group)
    .at(-1);
  const span = ms === undefined ? '' : ` (${formatDuration(ms)})`;
  if (ms === undefined || last === undefined)
    return { why: `suppressed by the cooldown of ${action.scenario}${span}` };
  const untilAt = last.action.decidedAt + ms;
  return {
    why: `suppressed by the cooldown of ${action.scenario}${span}: sent at ${timeText(last.action.decidedAt)}, again from ${timeText(untilAt)}`,
    untilAt,
  };
}

function exclusive(
  entry: ActionEntry,
  active: string,
  history: readonly ActionEntry[],
  ctx: ReasonContext,
): Partial<DecisionExplanation> {
  const { category } = entry.action;
  const rule = ctx.policy?.exclusive.find((r) => r.active === active && r.suppress.includes(category));
  const cause = sentBefore(history, entry)
    .filter((e) => e.action.category === active)
    .at(-1);
  if (cause === undefined) return { why: `exclusive because of a ${active} action` };
  const becauseAt = cause.action.decidedAt;
  const out: Partial<DecisionExplanation> = {
    why: `exclusive because of a ${active} action at ${timeText(becauseAt)} (${cause.action.scenario})`,
    becauseAt,
  };
  if (rule !== undefined) {
    out.untilAt = becauseAt + rule.forMs;
    out.why += `: no ${category} for ${formatDuration(rule.forMs)}, until ${timeText(out.untilAt)}`;
  }
  return out;
}

/** The suppressing cap in words, with when it frees up where this device's own sends tell. */
function contact(
  entry: ActionEntry,
  history: readonly ActionEntry[],
  ctx: ReasonContext,
): Partial<DecisionExplanation> {
  const { category, decidedAt: at } = entry.action;
  const covering = (ctx.policy?.contact ?? []).filter((cap) => capCovers(cap, category));
  if (covering.length === 0) return { why: 'suppressed by the contact cap' };
  const sent = sentBefore(history, entry);
  for (const cap of covering) {
    // Those of this device that count toward the cap; with `by`, other devices' count too and are not known here.
    const counted = sent.filter(
      (e) => capCovers(cap, e.action.category) && e.action.decidedAt > at - cap.perMs,
    );
    if (cap.by === undefined && counted.length >= cap.max) {
      const oldest = counted[counted.length - cap.max] as ActionEntry;
      const untilAt = oldest.action.decidedAt + cap.perMs;
      return { why: `suppressed by ${capWords([cap], category)} until ${timeText(untilAt)}`, untilAt };
    }
  }
  const shared = covering.find((cap) => cap.by !== undefined);
  if (shared?.by === undefined) return { why: `suppressed by ${capWords(covering, category)}` };
  return { why: `suppressed by ${capWords([shared], category)} (shared by ${shared.by.source})` };
}

/** `the offer cap 1 per 24h` for a cap on named categories, `the contact cap 3 per 1h` for the rest. */
function capWords(caps: readonly ContactPolicy[], category: string): string {
  return caps
    .map((cap) => {
      const name = cap.categories === undefined ? 'contact' : category;
      return `the ${name} cap ${cap.max} per ${formatDuration(cap.perMs)}`;
    })
    .join(' or ');
}

function expired(entry: ActionEntry, ctx: ReasonContext): string {
  const ttl = ctx.policy?.ttlMs.get(entry.action.category);
  const span = ttl === undefined ? '' : ` (${formatDuration(ttl)})`;
  return `expired: waited in the outbox past the ${entry.action.category} ttl${span}`;
}

/** A decision in plain words; `history` is the device's decisions kept (any order), which the reasons are read from. */
export function explainDecision(
  entry: ActionEntry,
  history: readonly ActionEntry[],
  ctx: ReasonContext,
): DecisionExplanation {
  const { action, reason } = entry;
  const base = {
    at: action.decidedAt,
    id: action.id,
    scenario: action.scenario,
    action: action.action,
    category: action.category,
  };
  if (entry.verdict === 'sent') return { ...base, verdict: 'sent', why: 'sent' };
  if (entry.verdict === 'dropped') {
    const isExpired = reason === EXPIRED_REASON;
    return {
      ...base,
      verdict: isExpired ? 'expired' : 'dropped',
      ...(reason !== undefined ? { reason } : {}),
      why: isExpired ? expired(entry, ctx) : `dropped: ${reason ?? 'unsent'}`,
    };
  }
  let words: Partial<DecisionExplanation> = { why: `suppressed (${reason ?? 'policy'})` };
  if (reason === 'cooldown') words = cooldown(entry, history, ctx);
  else if (reason === 'contact') words = contact(entry, history, ctx);
  else if (reason?.startsWith('exclusive:') === true)
    words = exclusive(entry, reason.slice('exclusive:'.length), history, ctx);
  return {
    ...base,
    verdict: 'suppressed',
    ...(reason !== undefined ? { reason } : {}),
    ...words,
  } as DecisionExplanation;
}
