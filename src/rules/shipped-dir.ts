import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The repository's `rules/` folder, the defaults that ship. From src/rules/ (tsx, vitest) it is two levels
 * up; from dist/src/rules/ (after tsc) three.
 */
export function shippedRulesDir(): string {
  const candidates = [new URL('../../rules/', import.meta.url), new URL('../../../rules/', import.meta.url)];
  for (const url of candidates) {
    const dir = fileURLToPath(url);
    if (existsSync(dir)) return dir.replace(/\/$/, '');
  }
  return fileURLToPath(candidates[0] as URL).replace(/\/$/, '');
}
