import { existsSync, readFileSync } from 'node:fs';

/** The package version, found from src/cli (tsx) or dist/src/cli (built). */
export function packageVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    const url = new URL(rel, import.meta.url);
    if (!existsSync(url)) continue;
    const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'vigil' && pkg.version) return pkg.version;
  }
  return 'unknown';
}
