/**
 * When a checkpoint is due by the journal written since the last one (the interval is the other way): a restart
 * replays that tail before it decides again, so the tail is kept short; but a large state is not rewritten more often
 * than the flash's write budget allows.
 */

/**
 * A checkpoint due by `replayRecords` also waits for as many records as make it cost at most this many bytes a record,
 * counted as encoded, before compression: the work of encoding it, which the event loop shares, and an upper bound of
 * what it writes (a third of the write budget of a QoS 0 event, 300 bytes, of which the journal takes about 170;
 * docs/benchmarks.md, "Write budget"). Compressed, it writes a fraction of that.
 */
export const CHECKPOINT_BYTES_PER_RECORD = 100;

export interface TailBounds {
  /** A checkpoint is due after this many records whatever it costs. */
  readonly checkpointRecords: number;
  /** ...and after this many, the replay a restart has to do, once they pay for the checkpoint's size. */
  readonly replayRecords: number;
}

/**
 * Whether `records` applied since the last checkpoint, which encoded to `checkpointBytes` (0 before the first), make
 * the next one due. Numbers rather than an object: it is asked for every live record past `replayRecords`.
 */
export function checkpointDue(records: number, checkpointBytes: number, bounds: TailBounds): boolean {
  if (records >= bounds.checkpointRecords) return true;
  return records >= bounds.replayRecords && records * CHECKPOINT_BYTES_PER_RECORD >= checkpointBytes;
}

/** How long a checkpoint encodes at a stretch, at most, while the event loop's turns are short. */
export const CHECKPOINT_STRETCH_MS = 50;

/**
 * How long a checkpoint encodes before it yields again, after a write of what it encoded that took `writtenMs` and a
 * turn of I/O that took `turnMs`: as long as both, so that it keeps about half of the loop; at most
 * `CHECKPOINT_STRETCH_MS`, unless the turn itself was longer. A gateway past what it sustains has turns of seconds, each
 * full of device input: with the stretch capped at 50 ms there, each 50 ms of a checkpoint's encoding waited for a turn
 * of seconds, and the journal a restart replays grew all the while.
 */
export function checkpointBudgetMs(writtenMs: number, turnMs: number): number {
  return Math.min(writtenMs + turnMs, Math.max(CHECKPOINT_STRETCH_MS, turnMs));
}
