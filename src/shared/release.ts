import { existsSync, readFileSync } from 'node:fs';
import { getAsset, isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';

/** The release and commit of this build. */
export interface BuildInfo {
  readonly version: string;
  /** A commit, or where to ask git for it (a checkout). */
  readonly commit: string | { readonly checkout: string };
  /** The single executable's bundle, its SHA-256: what is kept from one start for the next is kept per bundle. */
  readonly bundle?: string;
}

// Written by build/build-binary.ts into the single executable, which has no package.json or .git.
const BUILD_INFO_ASSET = 'vigil/build-info.json';

let info: BuildInfo | undefined;

/** This build's release and commit (from the single executable's asset, or the checkout's package.json). */
export function buildInfo(): BuildInfo {
  info ??= readBuildInfo();
  return info;
}

/** This build's release (`0.2.0` in package.json), which the data it writes names. */
export function releaseVersion(): string {
  return buildInfo().version;
}

function readBuildInfo(): BuildInfo {
  if (isSea()) return JSON.parse(getAsset(BUILD_INFO_ASSET, 'utf8')) as BuildInfo;
  for (const rel of ['../../', '../../../']) {
    const root = new URL(rel, import.meta.url);
    const pkgUrl = new URL('package.json', root);
    if (!existsSync(pkgUrl)) continue;
    const pkg = JSON.parse(readFileSync(pkgUrl, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'vigil' && pkg.version) {
      return { version: pkg.version, commit: { checkout: fileURLToPath(root) } };
    }
  }
  return { version: 'unknown', commit: 'unknown' };
}
