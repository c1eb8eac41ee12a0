import { expect, test } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { parseBytes } from '../../src/shared/index.js';

test('sizes parse in binary and decimal units; anything else is refused', () => {
  expect(parseBytes('256MiB')).toBe(256 * 1024 * 1024);
  expect(parseBytes('1.5 KiB')).toBe(1536);
  expect(parseBytes('2GB')).toBe(2_000_000_000);
  expect(parseBytes('0')).toBe(0);
  expect(parseBytes(4096)).toBe(4096);
  for (const bad of ['', '12 parsecs', '-1MiB', 'MiB', 1.5, -3]) expect(parseBytes(bad)).toBeUndefined();
});

test('durability.retention defaults to a day and 128 MiB, and takes durations and sizes', () => {
  expect(configSchema.parse({}).durability.retention).toEqual({ age: 86_400_000, size: 134_217_728 });
  const set = configSchema.parse({ durability: { retention: { age: '6h', size: '1GiB' } } });
  expect(set.durability.retention).toEqual({ age: 21_600_000, size: 1024 ** 3 });
  expect(configSchema.safeParse({ durability: { retention: { size: 'lots' } } }).success).toBe(false);
});
