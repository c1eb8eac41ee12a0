import { VigilError } from './errors.js';

/**
 * The on-disk formats this build writes and the newest it reads (docs/durability.md, "Formats"). A format number
 * changes only when an older build would misread the data; what an older build can ignore (a new optional field)
 * keeps it. Data written before formats were numbered is format 1.
 */
export const DATA_FORMATS = {
  /** Each journal frame carries the format of its record; 2 added the clock record. */
  journal: 2,
  /**
   * A checkpoint: the newest of its file's container and its parts' versions (its body's, its engine state's, its
   * arbiter state's); 2 added the arbiter state per contact cap and exclusivity scope (caps keyed by a profile field),
   * 3 the file compressed with zstd (`VGC3`).
   */
  checkpoint: 3,
  /** The LevelDB database, one number for every value in it (the `format` key of its `state` area). */
  store: 1,
} as const;

export type DataKind = keyof typeof DATA_FORMATS;

const WHAT: Record<DataKind, string> = {
  journal: 'a journal record',
  checkpoint: 'a checkpoint',
  store: 'the database (profiles, outboxes, sessions, bundles)',
};

/**
 * Data in a format newer than this build reads: start-up stops rather than skip or reset what it cannot read.
 * `writtenBy`: the release that wrote it, when the data says.
 */
export class DataFormatError extends VigilError {
  readonly kind: DataKind;
  /** The format found; undefined when the data does not say (a journal record of a type this build does not know). */
  readonly found: number | undefined;
  readonly writtenBy: string | undefined;
  constructor(kind: DataKind, found: number | undefined, where: string, writtenBy?: string) {
    const by = writtenBy === undefined ? 'a newer Vigil' : `Vigil ${writtenBy}`;
    const format = found === undefined ? 'a newer format' : `format ${found}`;
    super(
      'VIGIL_DATA_FORMAT',
      `${WHAT[kind]} in ${where} is in ${format}, written by ${by}; this Vigil reads ${kind} formats up to ${DATA_FORMATS[kind]}`,
      {
        hint: `run ${writtenBy === undefined ? 'the release that wrote it' : `Vigil ${writtenBy}`} or a newer one on this data directory, or restore the copy of it taken before the upgrade (README, "Upgrading and rolling back")`,
      },
    );
    this.kind = kind;
    this.found = found;
    this.writtenBy = writtenBy;
  }
}
