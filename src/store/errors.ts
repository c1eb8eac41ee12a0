import { VigilError } from '../shared/index.js';
import type { ImportSummary } from './import-summary.js';

/** An import stopped before the end of its input; what was written before that stays written. */
export class ProfileImportError extends VigilError {
  /** What was imported and rejected before the failure. */
  readonly partial: ImportSummary;
  constructor(message: string, partial: ImportSummary, options?: { cause?: unknown }) {
    super('VIGIL_PROFILE_IMPORT', message, {
      ...options,
      hint: 'the profiles before the failure are stored; importing the file again is safe (profiles are keyed by id)',
    });
    this.partial = partial;
  }
}
