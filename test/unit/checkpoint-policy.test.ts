import { describe, expect, test } from 'vitest';
import { CHECKPOINT_BYTES_PER_RECORD, checkpointDue } from '../../src/runtime/checkpoint-policy.js';

const bounds = { checkpointRecords: 500_000, replayRecords: 50_000 };

describe('checkpoints due by the journal tail', () => {
  test('a tail of replayRecords is checkpointed, a shorter one waits', () => {
    expect(checkpointDue(49_999, 62_000, bounds)).toBe(false);
    expect(checkpointDue(50_000, 62_000, bounds)).toBe(true);
  });

  test('a large state is checkpointed no more often than its size allows per record', () => {
    // A 9 MB checkpoint is rewritten after 90,000 records at the soonest.
    const bytes = 9_000_000;
    const enough = bytes / CHECKPOINT_BYTES_PER_RECORD;
    expect(checkpointDue(enough - 1, bytes, bounds)).toBe(false);
    expect(checkpointDue(enough, bytes, bounds)).toBe(true);
  });

  test('checkpointRecords makes a checkpoint due whatever its size', () => {
    expect(checkpointDue(500_000, 1e12, bounds)).toBe(true);
    expect(checkpointDue(499_999, 1e12, bounds)).toBe(false);
    expect(checkpointDue(2, 10_000, { ...bounds, checkpointRecords: 2 })).toBe(true);
  });
});
