import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TEMPLATES_DIR } from '../rules/index.js';
import type { BundleFile } from './bundle.js';

const RULE_FILE = /\.ya?ml$/i;

/**
 * The rule files of a directory as a bundle carries them: the `*.yaml` files at its top and in its
 * `templates/` folder (the files `vigil run --rules DIR` loads), paths relative to the directory.
 */
export async function readBundleFiles(dir: string): Promise<BundleFile[]> {
  const top = await ruleFileNames(dir);
  const templates = await ruleFileNames(join(dir, TEMPLATES_DIR)).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  });
  const paths = [...top, ...templates.map((name) => `${TEMPLATES_DIR}/${name}`)];
  return Promise.all(paths.map(async (path) => ({ path, text: await readFile(join(dir, path), 'utf8') })));
}

async function ruleFileNames(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && RULE_FILE.test(e.name))
    .map((e) => e.name)
    .sort();
}
