export { compileRuleFiles, loadRulesDir, checkRulesDir, TEMPLATES_DIR } from './load.js';
export { shippedRulesDir } from './shipped-dir.js';
export { compileExpression, MAX_EXPRESSION_CHARS, RULE_VARIABLES } from './cel.js';
export type { CompileOptions, CompileResult } from './cel.js';
export { MAX_PERIOD_MS } from './scenario-parser.js';
export type {
  AggregateFn,
  AggregatePlan,
  EmitPlan,
  FieldPlan,
  LoadResult,
  RuleSet,
  Scenario,
  StepPlan,
  WhenPlan,
} from './types.js';
export type { Policy } from './policy.js';
