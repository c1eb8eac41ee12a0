/**
 * When a checkpoint is due by the journal written since the last one (the interval is the other way): a restart
 * replays that tail before it decides again, so the tail is kept short; but a large state is not rewritten more often
 * than the flash's write budget allows.
 */

/**
 * A checkpoint due by `replayRecords` also waits for as many records as make it cost at most this many bytes a record:
 * a third of the write budget of a QoS 0 event (300 bytes, of which the journal takes about 170; docs/benchmarks.md,
 * "Write budget").
 */
export const CHECKPOINT_BYTES_PER_RECORD = 100;

export interface JournalTail {
  /** Records applied since the last checkpoint. */
  readonly records: number;
  /** The size of the last checkpoint written (0 before the first). */
  readonly checkpointBytes: number;
}

export interface TailBounds {
  /** A checkpoint is due after this many records whatever it costs. */
  readonly checkpointRecords: number;
  /** ...and after this many, the replay a restart has to do, once they pay for the checkpoint's size. */
  readonly replayRecords: number;
}

export function checkpointDue(tail: JournalTail, bounds: TailBounds): boolean {
  if (tail.records >= bounds.checkpointRecords) return true;
  return (
    tail.records >= bounds.replayRecords && tail.records * CHECKPOINT_BYTES_PER_RECORD >= tail.checkpointBytes
  );
}
