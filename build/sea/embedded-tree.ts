import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cacheDirs, embeddedManifest, ensurePrivateDir, materialize } from './embedded-files.js';

let treeDir: string | undefined;

/**
 * Stands in for `import.meta.url` of the app's modules in the executable. Modules find the files that
 * ship with them (the rules, the dashboard's page) relative to their own URL; the executable carries
 * those files as assets and writes them out once, laid out as in the repository, under a folder named
 * by their hash. `rel` is the module's path in the repository, e.g. `src/rules/shipped-dir.ts`.
 */
export function moduleUrl(rel: string): string {
  treeDir ??= writeTree();
  return pathToFileURL(join(treeDir, rel)).href;
}

function writeTree(): string {
  const { tree } = embeddedManifest();
  const failures: string[] = [];
  for (const base of cacheDirs()) {
    try {
      ensurePrivateDir(base);
      const target = join(base, `files-${tree.sha256.slice(0, 16)}`);
      ensurePrivateDir(target);
      // Checked on every start, not only written once: a file edited in the cache is put back.
      for (const file of tree.files) materialize(target, file);
      return target;
    } catch (err) {
      failures.push(`${base}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(
    `cannot write the shipped files (rules, dashboard) to ${failures.join('; ')}. Set VIGIL_CACHE_DIR to a writable folder.`,
  );
}
