import { isMap } from 'yaml';
import type { ForwardPlan } from './types.js';
import { MAX_PERIOD_MS, NAME_PATTERN } from './when-fields.js';
import type { Field, Reader } from './yaml-reader.js';

const FORWARD_KEYS = ['of', 'sample', 'every', 'type'];
const WHAT = ['raw', 'aggregates'] as const;
const MAX_SAMPLE = 1_000_000;

/**
 * `then.forward`: telemetry upstream (docs/sync.md, "Telemetry"). `raw` or `aggregates` alone, or a mapping:
 * `of` (raw, the default, or aggregates), `sample: N` (1 in N firings per actor) or `every: 1m` (at most one per
 * interval per actor), `type` (the topic level; default the event's type, or the scenario's id for aggregates).
 * `aggregates`: the names the scenario's `when` computes (undefined when it computes none).
 */
export function parseForward(r: Reader, field: Field, aggregates: readonly string[]): ForwardPlan | undefined {
  const { src, value } = field;
  const whatOf = (node: Field['value'], where: string): ForwardPlan['of'] | undefined => {
    const s = r.string(src, node, where, 'raw');
    if (s === undefined) return undefined;
    if ((WHAT as readonly string[]).includes(s)) return s as ForwardPlan['of'];
    r.problem(src, node, `${where}: "${s}" is not what can be forwarded (raw, aggregates)`);
    return undefined;
  };
  let plan: ForwardPlan | undefined;
  if (!isMap(value)) {
    const of = whatOf(value, 'forward');
    plan = of === undefined ? undefined : { of };
  } else {
    plan = parseMap(r, field, whatOf);
  }
  if (plan?.of === 'aggregates' && aggregates.length === 0) {
    r.problem(src, field.key, 'forward: aggregates: this scenario\'s "when" computes none (use raw)');
    return undefined;
  }
  return plan;
}

function parseMap(
  r: Reader,
  field: Field,
  whatOf: (node: Field['value'], where: string) => ForwardPlan['of'] | undefined,
): ForwardPlan | undefined {
  const { src, value } = field;
  const f = r.fields(src, value, 'forward', FORWARD_KEYS);
  if (!f) return undefined;
  let ok = true;
  const ofField = f.get('of');
  const of = ofField ? whatOf(ofField.value, 'forward.of') : 'raw';
  if (of === undefined) return undefined;
  const plan: ForwardPlan = { of };
  const sample = f.get('sample');
  const every = f.get('every');
  if (sample && every) {
    r.problem(src, every.key, 'forward: use either sample (1 in N) or every (one per interval), not both');
    ok = false;
  }
  if (sample) {
    const n = r.integer(src, sample.value, 'forward.sample', 2, MAX_SAMPLE);
    if (n === undefined) ok = false;
    else plan.oneIn = n;
  }
  if (every) {
    const ms = r.duration(src, every.value, 'forward.every', MAX_PERIOD_MS);
    if (ms === undefined) ok = false;
    else plan.everyMs = ms;
  }
  const typeField = f.get('type');
  if (typeField) {
    const type = r.string(src, typeField.value, 'forward.type', 'temperature');
    if (type === undefined) ok = false;
    else if (!NAME_PATTERN.test(type)) {
      r.problem(src, typeField.value, `forward.type: "${type}" cannot be a topic level (no spaces, "/", "+" or "#")`);
      ok = false;
    } else plan.type = type;
  }
  return ok ? plan : undefined;
}
