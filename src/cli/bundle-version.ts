import { createPublicKey } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { VigilError } from '../shared/index.js';
import { openBundle, type SigningKey } from '../sync/index.js';

/** The file beside a signing key that holds the last bundle version signed with the keys of that directory. */
export const VERSION_FILE = 'bundle-version';

/** The version `vigil rules bundle` gives a bundle, and what it was worked out from. */
export interface PickedVersion {
  version: number;
  /** Why, for people; absent when `--version` gave it. */
  reason?: string;
}

/**
 * The next bundle version: one above the highest of the version recorded beside the key (`bundle-version`, written by
 * every `vigil rules bundle`) and the version of the bundle already at `out` when this key signed it. 1 when
 * neither is there.
 */
export async function pickVersion(keyPath: string, out: string, signer: SigningKey): Promise<PickedVersion> {
  const recorded = await readRecorded(keyPath);
  const previous = await versionAt(out, signer);
  const last = Math.max(recorded ?? 0, previous ?? 0);
  if (last === 0) return { version: 1, reason: `the first bundle signed from ${dirname(keyPath)}` };
  const from =
    (previous ?? 0) > (recorded ?? 0)
      ? `${out}, the bundle it replaces`
      : `the last recorded in ${versionFile(keyPath)}`;
  return { version: last + 1, reason: `one above version ${last}, ${from}` };
}

/** Records `version` beside the key, unless a higher one is recorded already. */
export async function recordVersion(keyPath: string, version: number): Promise<void> {
  const recorded = await readRecorded(keyPath);
  if (recorded !== undefined && recorded >= version) return;
  const file = versionFile(keyPath);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${version}\n`);
  await rename(tmp, file);
}

function versionFile(keyPath: string): string {
  return join(dirname(keyPath), VERSION_FILE);
}

async function readRecorded(keyPath: string): Promise<number | undefined> {
  const file = versionFile(keyPath);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new VigilError('VIGIL_BUNDLE_INPUT', `cannot read ${file}: ${(err as Error).message}`);
  }
  const n = Number(text.trim());
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new VigilError(
      'VIGIL_BUNDLE_INPUT',
      `${file} should hold the last bundle version, not ${JSON.stringify(text.trim())}`,
      {
        hint: 'pass --version N to choose the version; the file is written again with it',
      },
    );
  }
  return n;
}

/** The version of the bundle at `path` when `signer` signed it; undefined when there is none. */
async function versionAt(path: string, signer: SigningKey): Promise<number | undefined> {
  const bytes = await readFile(path).catch(() => undefined);
  if (bytes === undefined) return undefined;
  const opened = openBundle(bytes, [
    { id: signer.id, key: createPublicKey(signer.key), source: 'signing key' },
  ]);
  return opened.ok ? opened.content.version : undefined;
}
