/** A line of the input that was not imported, numbered from 1. */
export interface ImportLineError {
  line: number;
  message: string;
}

/** The outcome of a profile import, also the body the gateway's import API answers with. */
export interface ImportSummary {
  imported: number;
  rejected: number;
  /** The first rejected lines (capped); `rejected` counts them all. */
  errors: ImportLineError[];
  elapsedMs: number;
}

/** How far an import got; `bytesRead` is of the input. */
export interface ImportProgress {
  bytesRead: number;
  imported: number;
  rejected: number;
}
