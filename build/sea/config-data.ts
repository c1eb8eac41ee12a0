import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

/**
 * The `data` directory a config file names, for the cache folder (cache-dir.ts). A config file that cannot be
 * read is left to the command to report; here it only means no answer.
 */
export function dataFromConfig(file: string, cwd: string): string | undefined {
  try {
    const doc = parseYaml(readFileSync(resolve(cwd, file), 'utf8')) as unknown;
    if (typeof doc !== 'object' || doc === null) return undefined;
    const data = (doc as Record<string, unknown>).data;
    return typeof data === 'string' && data !== '' ? data : undefined;
  } catch {
    return undefined;
  }
}
