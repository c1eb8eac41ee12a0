import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { shippedRulesDir } from '../rules/index.js';

/**
 * Writes the demo's rule overlay into `dir`: the files of `rules/demo/` (non-events in seconds) and the
 * shipped policy with its cooldown and contact window set to `cadenceMs`, so that the same device can be
 * reported again within the run and actions keep coming for as long as the demo runs. Returns `dir`.
 */
export async function writeDemoRules(dir: string, cadenceMs: number): Promise<string> {
  const shipped = shippedRulesDir();
  const demoDir = join(shipped, 'demo');
  await mkdir(dir, { recursive: true });
  for (const name of await readdir(demoDir)) {
    if (name.endsWith('.yaml')) await copyFile(join(demoDir, name), join(dir, name));
  }
  const policy = parseDocument(await readFile(join(shipped, 'policy.yaml'), 'utf8'));
  const cadence = `${cadenceMs}ms`;
  policy.setIn(['policy', 'cooldown'], cadence);
  if (policy.hasIn(['policy', 'contact', 'per'])) policy.setIn(['policy', 'contact', 'per'], cadence);
  const header = `# The demo's pace: the shipped policy with its cooldown and contact window set to ${cadence}.\n`;
  await writeFile(join(dir, 'policy.yaml'), header + policy.toString());
  return dir;
}
