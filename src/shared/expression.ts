/** The outcome of evaluating one compiled expression: a value, or why it could not be computed. */
export type EvalResult = { ok: true; value: unknown } | { ok: false; error: string };

/** A CEL expression compiled once, when its rule loaded; evaluation is side-effect free and bounded. */
export interface Expression {
  readonly source: string;
  evaluate(vars: Readonly<Record<string, unknown>>): EvalResult;
}
