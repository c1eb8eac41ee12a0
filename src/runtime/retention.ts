import type { SegmentSpan } from './journal.js';

/** How much of the journal and how many checkpoints are kept beyond what recovery needs (`durability.retention`). */
export interface RetentionSettings {
  /** Checkpoints older than this (behind the newest) are deleted. */
  maxAgeMs: number;
  /** The checkpoints kept and the journal after the oldest of them fit in this many bytes. */
  maxBytes: number;
}

/**
 * A state a replay can start from: a checkpoint, or the empty state before the journal's first record (`seq` 0,
 * `at` the first record's time, no bytes of its own).
 */
export interface ReplayStart {
  seq: number;
  at: number;
  bytes: number;
}

/** What retention keeps: from which start on, and what it costs on disk. */
export interface Retained {
  start: ReplayStart;
  /** The starts kept (checkpoints, and the empty state while the journal begins at the first record). */
  starts: number;
  /** Checkpoints and journal segments kept, in bytes. */
  bytes: number;
}

/** Recovery falls back from the newest checkpoint to the one before it: those two are never deleted. */
export const MIN_CHECKPOINTS = 2;

/**
 * The oldest start to keep, given every start on disk (oldest first) and the journal's segments. The newest
 * checkpoints recovery may use always stay; an older start stays while it is no more than `maxAgeMs` older than
 * the newest and it, the starts after it and the journal after it fit in `maxBytes`. Segments whose records all
 * come at or before the oldest start kept can go, so the journal kept always begins where a start can replay it.
 */
export function oldestRetained(
  starts: readonly ReplayStart[],
  segments: readonly SegmentSpan[],
  settings: RetentionSettings,
): Retained | undefined {
  const newest = starts[starts.length - 1];
  if (newest === undefined) return undefined;
  const checkpoints = starts.filter((s) => s.seq > 0).length;
  let kept: Retained | undefined;
  let startBytes = 0;
  let checkpointsSeen = 0;
  for (let i = starts.length - 1; i >= 0; i--) {
    const start = starts[i] as ReplayStart;
    startBytes += start.bytes;
    if (start.seq > 0) checkpointsSeen++;
    const bytes = startBytes + journalBytesAfter(segments, start.seq);
    const required = start.seq > 0 && checkpointsSeen <= Math.min(MIN_CHECKPOINTS, checkpoints);
    const fits = newest.at - start.at <= settings.maxAgeMs && bytes <= settings.maxBytes;
    if (!required && !fits) break;
    kept = { start, starts: starts.length - i, bytes };
  }
  return kept;
}

/** The bytes of the segments holding a record after `seq` (the ones a replay from `seq` reads). */
function journalBytesAfter(segments: readonly SegmentSpan[], seq: number): number {
  let bytes = 0;
  for (const seg of segments) if (seg.end > seq) bytes += seg.bytes;
  return bytes;
}
