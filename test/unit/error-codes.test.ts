import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { ERROR_CODES } from '../../src/shared/index.js';

/** The codes in the first column of the README's "Troubleshooting" table, in order. */
function troubleshootingCodes(): string[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Troubleshooting\n'));
  if (section === undefined) throw new Error('README.md has no "## Troubleshooting" section');
  return [...section.matchAll(/^\|\s*`([A-Z_]+)`\s*\|/gm)].map((m) => m[1] ?? '');
}

test('every error code has one row in the README troubleshooting table, and every row is a code', () => {
  const documented = troubleshootingCodes();
  expect(new Set(documented).size).toBe(documented.length);
  expect([...documented].sort()).toEqual([...ERROR_CODES].sort());
});
