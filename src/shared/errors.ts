/** Stable error codes; tests and operators match on these, never on messages. */
export type ErrorCode =
  | 'VIGIL_CONFIG'
  | 'VIGIL_RULE_PARSE'
  | 'VIGIL_RULE_INVALID'
  | 'VIGIL_STORE_LOCKED'
  | 'VIGIL_STORE_IO'
  | 'VIGIL_PROFILE_IMPORT'
  | 'VIGIL_GATEWAY_API';

/** Base class of every error Vigil throws on purpose. */
export class VigilError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A configuration value is missing or out of range; start-up stops with this message. */
export class ConfigError extends VigilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VIGIL_CONFIG', message, options);
  }
}

/** One problem in a rule file, located as `file:line`. */
export interface RuleProblem {
  file: string;
  line: number;
  message: string;
}

export function formatProblem(p: RuleProblem): string {
  return `${p.file}:${p.line}: ${p.message}`;
}

/** Rule files failed to load; carries every problem found, not only the first. */
export class RuleError extends VigilError {
  readonly problems: readonly RuleProblem[];
  constructor(problems: readonly RuleProblem[]) {
    super('VIGIL_RULE_INVALID', problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }
}

/** Another process holds the LevelDB data directory. */
export class StoreLockedError extends VigilError {
  constructor(dir: string, options?: { cause?: unknown }) {
    super('VIGIL_STORE_LOCKED', `data directory ${dir} is in use by another process`, options);
  }
}

/** A storage read or write failed (disk full, I/O error). */
export class StoreIoError extends VigilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VIGIL_STORE_IO', message, options);
  }
}
