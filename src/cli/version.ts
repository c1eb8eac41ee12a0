import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getAsset, isSea } from 'node:sea';
import { cborDecoderInUse, leveldbInUse } from './native-addons.js';

interface BuildInfo {
  readonly version: string;
  /** A commit, or where to ask git for it (a checkout). */
  readonly commit: string | { readonly checkout: string };
}

// Written by build/build-binary.ts into the single executable, which has no package.json or .git.
const BUILD_INFO_ASSET = 'vigil/build-info.json';

let info: BuildInfo | undefined;

/** What `vigil --version` prints: version and commit, Node, and whether the native addons are in use. */
export function versionReport(): string {
  const { version, commit } = buildInfo();
  const runtime = isSea() ? 'single executable' : 'on node';
  return [
    `vigil ${version} (commit ${typeof commit === 'string' ? commit : gitCommit(commit.checkout)})`,
    `node ${process.version} ${process.platform}-${process.arch}, ${runtime}`,
    `leveldb ${leveldbInUse()}`,
    `cbor ${cborDecoderInUse()}`,
  ].join('\n');
}

/** The version alone, for the gateway's health report. */
export function buildVersion(): string {
  return buildInfo().version;
}

function buildInfo(): BuildInfo {
  info ??= readBuildInfo();
  return info;
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

// Only for a checkout; an installed package has no .git and says `unknown`.
function gitCommit(dir: string): string {
  if (!existsSync(join(dir, '.git'))) return 'unknown';
  // Loaded here, not with the module: every command imports this one, few ever run git.
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const git = (args: string[]) =>
    spawnSync('git', args, { cwd: dir, encoding: 'utf8', timeout: 2_000 }).stdout?.trim() ?? '';
  const commit = git(['rev-parse', '--short=12', 'HEAD']);
  if (commit === '') return 'unknown';
  return git(['status', '--porcelain', '--untracked-files=no']) === '' ? commit : `${commit}-dirty`;
}
