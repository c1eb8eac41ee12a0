import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PinnedPackage } from './pins.js';

/**
 * Fetches a pinned package with `npm pack` (from npm's cache when it has it) into `cacheDir`, checks
 * the tarball against the pinned integrity and unpacks it (only `members`, paths inside the package,
 * when given); returns the unpacked folder. A folder unpacked earlier from the same tarball is reused.
 */
export function fetchPackage(pkg: PinnedPackage, cacheDir: string, members: readonly string[] = []): string {
  const name = pkg.spec.replace(/^@/, '').replace(/[/@]/g, '-');
  const dir = join(cacheDir, name);
  const marker = join(dir, '.integrity');
  const stamp = `${pkg.integrity} ${members.join(' ')}`;
  if (existsSync(marker) && readFileSync(marker, 'utf8') === stamp) return dir;

  mkdirSync(cacheDir, { recursive: true });
  let tarball: string;
  try {
    const out = execFileSync(
      'npm',
      ['pack', '--json', '--silent', '--pack-destination', cacheDir, pkg.spec],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const [packed] = JSON.parse(out) as Array<{ filename: string }>;
    if (packed === undefined) throw new Error('npm pack reported no file');
    tarball = join(cacheDir, packed.filename.replace(/^@/, '').replace(/\//g, '-'));
  } catch (err) {
    throw new Error(`cannot fetch ${pkg.spec} with npm pack: ${describe(err)}`, { cause: err });
  }
  const actual = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
  if (actual !== pkg.integrity) {
    throw new Error(`${pkg.spec}: tarball integrity ${actual} is not the pinned ${pkg.integrity}`);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const paths = members.map((m) => `package/${m}`);
  execFileSync('tar', ['-xzf', tarball, '-C', dir, '--strip-components=1', ...paths], { stdio: 'inherit' });
  rmSync(tarball);
  writeFileSync(marker, stamp);
  return dir;
}

function describe(err: unknown): string {
  const stderr = (err as { stderr?: unknown }).stderr;
  if (typeof stderr === 'string' && stderr.trim() !== '')
    return stderr.trim().split('\n').slice(-3).join(' ');
  return err instanceof Error ? err.message : String(err);
}
