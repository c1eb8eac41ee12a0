import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cacheDirs, embeddedManifest, ensurePrivateDir, materialize } from './embedded-files.js';

/** The folder each module's files were written to, by the module's path in the repository. */
const treeDirs = new Map<string, string>();

/**
 * Stands in for `import.meta.url` of the app's modules in the executable. Modules find the files that
 * ship with them (the rules, the dashboard's page) relative to their own URL; the executable carries
 * those files as assets and writes out the ones a module reads when that module first asks for its
 * URL, laid out as in the repository, under a folder named by the hash of all of them. `rel` is the
 * module's path in the repository, e.g. `src/rules/shipped-dir.ts`.
 */
export function moduleUrl(rel: string): string {
  let dir = treeDirs.get(rel);
  if (dir === undefined) {
    dir = writeFiles(rel);
    treeDirs.set(rel, dir);
  }
  return pathToFileURL(join(dir, rel)).href;
}

function writeFiles(rel: string): string {
  const { tree } = embeddedManifest();
  const wanted = new Set(tree.modules[rel] ?? []);
  const files = tree.files.filter((f) => wanted.has(f.path));
  const failures: string[] = [];
  for (const base of cacheDirs()) {
    try {
      ensurePrivateDir(base);
      const target = join(base, `files-${tree.sha256.slice(0, 16)}`);
      ensurePrivateDir(target);
      // Checked each time a start needs them, not only written once: a file edited in the cache is put back.
      for (const file of files) materialize(target, file);
      return target;
    } catch (err) {
      failures.push(`${base}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(
    `cannot write the shipped files (rules, dashboard) to ${failures.join('; ')}. Set VIGIL_CACHE_DIR to a writable folder.`,
  );
}
