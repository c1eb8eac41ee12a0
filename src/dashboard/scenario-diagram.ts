import type { FieldPlan, Scenario, StepPlan, WhenPlan } from '../rules/index.js';
import type { Expression } from '../shared/index.js';

type Show = (e: Expression) => string;

/** What a box of the diagram stands for; the page styles each differently. */
export type BoxRole = 'event' | 'absent' | 'condition' | 'window' | 'timer' | 'action' | 'emit';

/** One box of a scenario's flow, left to right; `arrow` labels the arrow that leads into it. */
export interface DiagramBox {
  role: BoxRole;
  title: string;
  lines: string[];
  arrow?: string;
}

/** A scenario's definition as its business reading: a sentence and a flow of boxes. */
export interface ScenarioDiagram {
  kind: WhenPlan['kind'];
  /** One plain sentence: when the scenario fires. */
  summary: string;
  /** What the scenario keeps state for: each device, or each value of its `by` expression. */
  per: string;
  /** Template parameters the scenario was instantiated with. */
  params: Array<{ name: string; value: string }>;
  flow: DiagramBox[];
}

/** Builds the diagram of a compiled scenario from its plan (not its YAML), so it shows what actually runs. */
export function describeScenario(sc: Scenario): ScenarioDiagram {
  const show = (e: Expression): string => withParams(e.source, sc.params);
  const { summary, flow } = describeWhen(sc.when, show);
  const outcome = describeOutcome(sc, show);
  return {
    kind: sc.when.kind,
    summary,
    per: sc.by ? `each value of ${show(sc.by)}` : 'each device',
    params: Object.entries(sc.params).map(([name, value]) => ({ name, value: showValue(value) })),
    flow: [...flow, ...outcome],
  };
}

function describeWhen(when: WhenPlan, show: Show): { summary: string; flow: DiagramBox[] } {
  switch (when.kind) {
    case 'trigger': {
      const flow = [eventBox(when.events, undefined)];
      if (when.where) flow.push({ role: 'condition', title: 'only if', lines: [show(when.where)] });
      return {
        summary: `Fires on every ${eventsText(when.events)} event${when.where ? ` where ${show(when.where)}` : ''}.`,
        flow,
      };
    }
    case 'count': {
      const window = when.withinMs !== undefined ? ` within ${formatDuration(when.withinMs)}` : '';
      const lines = when.distinct ? [`each from a different ${show(when.distinct)}`] : [];
      if (when.withinMs === undefined) lines.push('counted from the last firing');
      return {
        summary:
          `Fires when ${when.count} ${eventsText(when.events)} event${when.count === 1 ? '' : 's'}` +
          `${when.where ? ` where ${show(when.where)}` : ''}` +
          `${when.distinct ? `, each from a different ${show(when.distinct)},` : ''}` +
          ` ${when.withinMs !== undefined ? `come${window}` : 'have come'}; then it counts again from zero.`,
        flow: [
          eventBox(when.events, when.where ? show(when.where) : undefined),
          { role: 'window', title: `${when.count} ${when.count === 1 ? 'time' : 'times'}${window}`, lines },
        ],
      };
    }
    case 'aggregate': {
      const flow: DiagramBox[] = [
        eventBox(when.events, when.where ? show(when.where) : undefined),
        {
          role: 'window',
          title: `over the last ${formatDuration(when.windowMs)}`,
          lines: when.aggregates.map((a) => `${a.name} = ${a.fn}(${a.arg ? show(a.arg) : ''})`),
        },
      ];
      if (when.having) flow.push({ role: 'condition', title: 'only if', lines: [show(when.having)] });
      const names = when.aggregates.map((a) => a.name).join(', ');
      return {
        summary:
          `On every ${eventsText(when.events)} event, computes ${names} over the last ` +
          `${formatDuration(when.windowMs)}${when.having ? ` and fires when ${show(when.having)}` : ' and fires'}.`,
        flow,
      };
    }
    case 'silence': {
      const what = when.any ? 'nothing' : `no ${when.absent} event`;
      return {
        summary: `Fires when ${what} has come for ${formatDuration(when.forMs)}; once per silence.`,
        flow: [
          {
            role: 'event',
            title: when.any ? 'any event from the device' : when.absent,
            lines: ['each one restarts the clock'],
          },
          {
            role: 'timer',
            title: `${when.any ? 'nothing' : `no ${when.absent}`} for ${formatDuration(when.forMs)}`,
            lines: ['fires once per silence'],
          },
        ],
      };
    }
    case 'sequence': {
      const flow = when.steps.map((step, i) => stepBox(step, i, show));
      const parts = when.steps.map((step) =>
        step.kind === 'event'
          ? `${step.event}${step.withinMs !== undefined ? ` within ${formatDuration(step.withinMs)}` : ''}`
          : `no ${step.event} within ${formatDuration(step.withinMs ?? 0)}`,
      );
      return { summary: `Fires on the sequence: ${parts.join(', then ')}.`, flow };
    }
    case 'all': {
      return {
        summary:
          `Fires when ${listText(when.events)} have all come within ${formatDuration(when.withinMs)}` +
          ` of each other, in any order${when.where ? `, each where ${show(when.where)}` : ''}.`,
        flow: [
          {
            role: 'event',
            title: 'all of, in any order',
            lines: [...when.events, ...(when.where ? [`where ${show(when.where)}`] : [])],
          },
          { role: 'window', title: `within ${formatDuration(when.withinMs)}`, lines: ['of each other'] },
        ],
      };
    }
  }
}

function stepBox(step: StepPlan, index: number, show: Show): DiagramBox {
  const after = index === 0 ? undefined : 'then';
  if (step.kind === 'absent') {
    const box: DiagramBox = {
      role: 'absent',
      title: `no ${step.event}`,
      lines: [`within ${formatDuration(step.withinMs ?? 0)}`],
    };
    if (after) box.arrow = after;
    return box;
  }
  const box = eventBox([step.event], step.where ? show(step.where) : undefined);
  if (step.withinMs !== undefined) box.arrow = `within ${formatDuration(step.withinMs)}`;
  else if (after) box.arrow = after;
  return box;
}

function describeOutcome(sc: Scenario, show: Show): DiagramBox[] {
  const out: DiagramBox[] = [];
  if (sc.action !== undefined) {
    const lines = [
      `to ${listText(sc.to)}`,
      `priority ${sc.priority} · ${sc.category}`,
      ...fieldLines(sc.payload, show),
    ];
    if (sc.cooldownMs !== undefined) lines.push(`cooldown ${formatDuration(sc.cooldownMs)}`);
    out.push({ role: 'action', title: sc.action, lines });
  }
  if (sc.emit)
    out.push({ role: 'emit', title: `emits ${sc.emit.event}`, lines: fieldLines(sc.emit.data, show) });
  return out;
}

function eventBox(events: readonly string[], where: string | undefined): DiagramBox {
  const lines = events.length > 1 ? [`any of ${listText(events)}`] : [];
  if (where !== undefined) lines.push(`where ${where}`);
  return { role: 'event', title: events.length > 1 ? 'event' : (events[0] ?? ''), lines };
}

function fieldLines(fields: readonly FieldPlan[], show: Show): string[] {
  return fields.map((f) => `${f.name} = ${show(f.expr)}`);
}

function eventsText(events: readonly string[]): string {
  return events.join(' or ');
}

function listText(items: readonly string[]): string {
  if (items.length <= 1) return items[0] ?? '';
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1] ?? ''}`;
}

/**
 * An expression as the business reads it: a template's `params.limit` shows its value, and
 * `data[params.metric]` the field it names (`data.hum`). Display only; the rule runs as compiled.
 */
export function withParams(source: string, params: Readonly<Record<string, unknown>>): string {
  return source
    .replace(/\[\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\]/g, (whole, name: string) => {
      const v = params[name];
      return typeof v === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(v) ? `.${v}` : whole;
    })
    .replace(/\bparams\.([A-Za-z_][A-Za-z0-9_]*)/g, (whole, name: string) =>
      Object.hasOwn(params, name) ? JSON.stringify(params[name]) : whole,
    );
}

function showValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

const UNITS: ReadonlyArray<[string, number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
];

/** `90000` → `1m 30s`: durations as rule authors write them. */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [unit, size] of UNITS) {
    // `24h` reads as rule authors write it; days only from two of them.
    if (unit === 'd' && rest < 2 * size) continue;
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.join(' ');
}
