export { compileRuleFiles, loadRulesDir, checkRulesDir, TEMPLATES_DIR } from './load.js';
export { shippedRulesDir } from './shipped-dir.js';
export { compileExpression, MAX_EXPRESSION_CHARS, RULE_VARIABLES } from './cel.js';
export type { CompileOptions, CompileResult } from './cel.js';
export { MAX_PERIOD_MS } from './when-fields.js';
export type { WhenFields } from './when-fields.js';
export type { EmitPlan, FieldPlan, KindPlan, LoadResult, RuleSet, Scenario } from './types.js';
export type { AggregateFn, AggregatePlan, StepPlan, WhenPlan } from '../engine/kinds/index.js';
export type { Policy } from './policy.js';
