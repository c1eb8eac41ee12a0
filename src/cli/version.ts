import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isSea } from 'node:sea';
import { buildInfo } from '../shared/index.js';
import { cborDecoderInUse, leveldbInUse } from './native-addons.js';

/** What `vigil --version` prints: version and commit, Node, and whether the native addons are in use. */
export function versionReport(): string {
  const { version, commit } = buildInfo();
  // The executable's own V8 flags (build/node-flags.ts); under node, its command line is the user's.
  const flags = isSea() && process.execArgv.length > 0 ? ` (${process.execArgv.join(' ')})` : '';
  const runtime = isSea() ? `single executable${flags}` : 'on node';
  return [
    `vigil ${version} (commit ${typeof commit === 'string' ? commit : gitCommit(commit.checkout)})`,
    `node ${process.version} ${process.platform}-${process.arch}, ${runtime}`,
    `leveldb ${leveldbInUse()}`,
    `cbor ${cborDecoderInUse()}`,
  ].join('\n');
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
