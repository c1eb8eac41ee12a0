import { getHeapSpaceStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, test } from 'vitest';
import { releaseStartMemory } from '../../src/cli/release-start-memory.js';

function youngGenerationBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

test('the young generation a start grew is given back, and no context keeps the gc function', () => {
  // Much that survives young collections, as a start's modules and rules do: V8 grows the young generation.
  const kept: object[] = [];
  for (let i = 0; i < 400_000; i++) kept.push({ i, name: `device-${i}`, at: [i] });
  const grown = youngGenerationBytes();
  expect(releaseStartMemory()).toBe(true);
  const after = youngGenerationBytes();
  expect(kept).toHaveLength(400_000);
  expect(after).toBeLessThan(grown / 2);
  expect(runInNewContext('typeof gc')).toBe('undefined');
});

test('no collection is made while more of the heap is in use than the limit', () => {
  const kept: object[] = [];
  for (let i = 0; i < 400_000; i++) kept.push({ i, name: `device-${i}`, at: [i] });
  const grown = youngGenerationBytes();
  expect(releaseStartMemory(1)).toBe(false);
  expect(youngGenerationBytes()).toBe(grown);
  expect(kept).toHaveLength(400_000);
});
