import { describe, expect, test } from 'vitest';
import { CHECKPOINT_BYTES_PER_RECORD, checkpointDue } from '../../src/runtime/checkpoint-policy.js';

const bounds = { checkpointRecords: 500_000, replayRecords: 50_000 };

describe('checkpoints due by the journal tail', () => {
  test('a tail of replayRecords is checkpointed, a shorter one waits', () => {
    expect(checkpointDue({ records: 49_999, checkpointBytes: 62_000 }, bounds)).toBe(false);
    expect(checkpointDue({ records: 50_000, checkpointBytes: 62_000 }, bounds)).toBe(true);
  });

  test('a large state is checkpointed no more often than its size allows per record', () => {
    // A 9 MB checkpoint is rewritten after 90,000 records at the soonest.
    const bytes = 9_000_000;
    const enough = bytes / CHECKPOINT_BYTES_PER_RECORD;
    expect(checkpointDue({ records: enough - 1, checkpointBytes: bytes }, bounds)).toBe(false);
    expect(checkpointDue({ records: enough, checkpointBytes: bytes }, bounds)).toBe(true);
  });

  test('checkpointRecords makes a checkpoint due whatever its size', () => {
    expect(checkpointDue({ records: 500_000, checkpointBytes: 1e12 }, bounds)).toBe(true);
    expect(checkpointDue({ records: 499_999, checkpointBytes: 1e12 }, bounds)).toBe(false);
    expect(checkpointDue({ records: 2, checkpointBytes: 10_000 }, { ...bounds, checkpointRecords: 2 })).toBe(
      true,
    );
  });
});
