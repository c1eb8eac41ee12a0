import { formatDuration, kindOf, listText } from '../engine/index.js';
import type { DiagramBox, Show } from '../engine/index.js';
import type { FieldPlan, Scenario } from '../rules/index.js';
import type { Expression } from '../shared/index.js';

export { formatDuration };
export type { BoxRole, DiagramBox } from '../engine/index.js';

/** A scenario's definition as its business reading: a sentence and a flow of boxes. */
export interface ScenarioDiagram {
  kind: string;
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
  const { summary, flow } = kindOf(sc.when).diagram(sc.when, show);
  const outcome = describeOutcome(sc, show);
  return {
    kind: sc.when.kind,
    summary,
    per: sc.by ? `each value of ${show(sc.by)}` : 'each device',
    params: Object.entries(sc.params).map(([name, value]) => ({ name, value: showValue(value) })),
    flow: [...flow, ...outcome],
  };
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

function fieldLines(fields: readonly FieldPlan[], show: Show): string[] {
  return fields.map((f) => `${f.name} = ${show(f.expr)}`);
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
