import { isSeq } from 'yaml';
import { eventList, eventName } from '../../rules/when-fields.js';
import type { WhenFields } from '../../rules/when-fields.js';
import type { YamlNode } from '../../rules/yaml-reader.js';
import type { Event, Profile } from '../../shared/index.js';
import type { ScenarioRuntime, SeenEvent } from '../state.js';
import { seen, timerInput, timerKey } from '../step.js';
import type { Step } from '../step.js';
import type { ScenarioKind, TimerStep } from './kind.js';
import { SilenceGroups } from './silence-groups.js';
import { formatDuration, timeText } from './view.js';
import type { KindDiagram } from './view.js';

/**
 * `absent: T|[T, U]|any` + `for`: a silence timer per group, restarted by each such event, firing once per
 * silence. One type stays a string, so that the plans (and state fingerprints) written before lists are unchanged.
 */
export interface SilencePlan {
  kind: 'silence';
  absent: string | readonly string[];
  any: boolean;
  forMs: number;
}

/** The event types whose absence a plan or step waits for: `absent: T` or `absent: [T, U]`. */
export function absentTypes(absent: string | readonly string[]): readonly string[] {
  return typeof absent === 'string' ? [absent] : absent;
}

/** `heartbeat`, or `heartbeat or telemetry`. */
export function absentLabel(absent: string | readonly string[]): string {
  return absentTypes(absent).join(' or ');
}

/** An `absent:` value: one event type, or a list of them (any one of which breaks the silence). */
export function absentValue(
  w: { r: WhenFields['r']; src: WhenFields['src'] },
  node: YamlNode,
  where: string,
): string | readonly string[] | undefined {
  if (!isSeq(node)) return eventName(w.r, w.src, node, where);
  const list = eventList(w.r, w.src, node, where, 1);
  return list?.length === 1 ? list[0] : list;
}

/** The deadline of the current silence and the event that started it. */
export interface SilenceState {
  dueAt: number;
  last: SeenEvent;
}

type Runtime = ScenarioRuntime<SilencePlan, SilenceState>;

/**
 * `absent … for`: each awaited event (for `any`, each event from the device itself) restarts the group's
 * silence timer; the engine is fed only those events.
 */
export function onSilenceEvent(step: Step, rt: Runtime, ev: Event, profile: Profile | undefined): void {
  const group = rt.sc.by ? step.group(rt, step.baseVars(rt, ev, profile), ev.actor) : ev.actor;
  if (group === undefined) return;
  const dueAt = ev.at + rt.sc.when.forMs;
  const groups = rt.groups;
  if (groups instanceof SilenceGroups) {
    // The group's key, kept with it: not a new string on every event (`device-offline` hears them all).
    step.schedule(groups.restart(group, dueAt, ev, rt.sc.keepsData, rt.sc), ev.actor, dueAt);
    return;
  }
  groups.set(group, { dueAt, last: seen(ev, rt.sc.keepsData) });
  step.schedule(timerKey(rt.sc, group), ev.actor, dueAt);
}

/** The silence lasted: fire once, at the deadline, and wait for the next event to arm again. */
export const onSilenceTimer: TimerStep<SilencePlan, SilenceState> = (step, rt, key, group, profile) => {
  const st = rt.groups.get(group);
  if (!st) return;
  if (step.rearmEarly(key, st.last.actor, st.dueAt)) return;
  rt.groups.delete(group);
  step.fire(rt, {
    group,
    actor: st.last.actor,
    eventAt: st.dueAt,
    input: timerInput(key, st.dueAt),
    last: st.last,
    profile,
  });
};

function parseSilence(w: WhenFields): SilencePlan | undefined {
  const node = w.value('absent');
  const isAny = !isSeq(node) && w.r.string(w.src, node, 'absent', 'any') === 'any';
  const absent = isAny ? 'any' : absentValue(w, node, 'absent');
  if (!w.required('for', 'how long the silence lasts, such as 5m')) return undefined;
  const forMs = w.durationMs('for');
  if (absent === undefined || forMs === undefined) return undefined;
  return { kind: 'silence', absent, any: isAny, forMs };
}

function describeSilence(plan: SilencePlan): KindDiagram {
  const what = plan.any ? 'nothing' : `no ${absentLabel(plan.absent)} event`;
  return {
    summary: `Fires when ${what} has come for ${formatDuration(plan.forMs)}; once per silence.`,
    flow: [
      {
        role: 'event',
        title: plan.any ? 'any event from the device' : absentLabel(plan.absent),
        lines: ['each one restarts the clock'],
      },
      {
        role: 'timer',
        title: `${plan.any ? 'nothing' : `no ${absentLabel(plan.absent)}`} for ${formatDuration(plan.forMs)}`,
        lines: ['fires once per silence'],
      },
    ],
  };
}

export const silence: ScenarioKind<SilencePlan, SilenceState> = {
  name: 'silence',
  syntax: { selectors: ['absent'], keys: ['for'], shared: ['by'] },
  parse: parseSilence,
  listens: (plan) => (plan.any ? [] : absentTypes(plan.absent)),
  horizonMs: (plan) => plan.forMs,
  hearsDevice: (plan) => plan.any,
  onEvent: onSilenceEvent,
  onTimer: onSilenceTimer,
  // Column by column: a silence per device that spoke in the last `for`, at a high churn most of the engine's state.
  groups: () => new SilenceGroups(),
  timerOf: (st) => ({ actor: st.last.actor, dueAt: st.dueAt }),
  // No prune: every silence kept is a timer that will fire and end it.
  timerPeriodMs: (plan) => plan.forMs,
  // `absent: any` hears every event from the device, whatever its type.
  lastSeenEvent: (plan) => (plan.any ? 'last-seen' : (absentTypes(plan.absent)[0] ?? 'last-seen')),
  progress: (plan, st) => {
    const what = plan.any ? 'any event' : absentLabel(plan.absent);
    return { progress: `waiting for ${what}`, sinceAt: st.last.at, dueAt: st.dueAt };
  },
  lastActor: (st) => st.last.actor,
  explain: (plan, st) => ({
    state:
      `waiting for ${plan.any ? 'any event' : absentLabel(plan.absent)} until ${timeText(st.dueAt)} (silence deadline; ` +
      `the last came at ${timeText(st.last.at)})`,
    figures: { waitingFor: plan.any ? 'any' : absentLabel(plan.absent), forMs: plan.forMs },
    sinceAt: st.last.at,
    dueAt: st.dueAt,
  }),
  diagram: describeSilence,
};
