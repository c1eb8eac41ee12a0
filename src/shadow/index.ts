export { ShadowRules, type ShadowReport, type ShadowRulesOptions } from './shadow-rules.js';
export { ShadowRun, type ShadowRunOptions } from './shadow-run.js';
export {
  ShadowDiff,
  canonicalJson,
  type DiffExample,
  type DiffKind,
  type ScenarioDiff,
} from './shadow-diff.js';
