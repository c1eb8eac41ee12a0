import { describe, expect, test } from 'vitest';
import {
  CHECKPOINT_BYTES_PER_RECORD,
  CHECKPOINT_STRETCH_MS,
  checkpointBudgetMs,
  checkpointDue,
} from '../../src/runtime/checkpoint-policy.js';

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

describe("a checkpoint's stretches of encoding", () => {
  test('as long as the write and the turn before, at most 50 ms while turns are short', () => {
    expect(checkpointBudgetMs(0, 0)).toBe(0);
    expect(checkpointBudgetMs(2, 3)).toBe(5);
    expect(checkpointBudgetMs(30, 40)).toBe(CHECKPOINT_STRETCH_MS);
  });

  test('as long as the turn when a turn of I/O takes longer: the loop is shared half and half, and the checkpoint ends', () => {
    expect(checkpointBudgetMs(0, 2_000)).toBe(2_000);
    expect(checkpointBudgetMs(600, 2_000)).toBe(2_000);
    expect(checkpointBudgetMs(1_500, 200)).toBe(200);
  });
});
