// An arm64 root with the shared libraries Node needs (glibc, libgcc, libstdc++), from Debian's own
// packages, so that qemu-aarch64-static can run the arm64 executable on an x64 host without binfmt:
// `qemu-aarch64-static -L <root> build/out/vigil-linux-arm64 --version`.
// Run on its own, it prints the root's path: `node --import tsx build/arm64-sysroot.ts`.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGES = ['libc6:arm64', 'libgcc-s1:arm64', 'libstdc++6:arm64'];
const LOADER = 'lib/ld-linux-aarch64.so.1';

/** The qemu user-mode emulator from Debian's qemu-user-static. */
export const QEMU_AARCH64 = '/usr/bin/qemu-aarch64-static';

/** Where the root is kept between runs. */
export const ARM64_SYSROOT = fileURLToPath(new URL('out/.cache/sysroot-arm64', import.meta.url));

/**
 * Returns the arm64 root, unpacking it first if needed with `apt-get download` and `dpkg -x`. That
 * needs the arm64 architecture known to apt: `dpkg --add-architecture arm64 && apt-get update`.
 */
export function arm64Sysroot(dir = ARM64_SYSROOT): string {
  if (existsSync(join(dir, LOADER))) return dir;
  mkdirSync(join(dir, '..'), { recursive: true });
  const work = mkdtempSync(`${dir}.tmp-`);
  try {
    try {
      execFileSync('apt-get', ['download', ...PACKAGES], { cwd: work, stdio: 'pipe' });
    } catch (err) {
      const { stderr } = err as { stderr?: Buffer };
      const last = stderr?.toString().trim().split('\n').pop() ?? '';
      throw new Error(
        `apt-get download ${PACKAGES.join(' ')} failed (${last}); ` +
          'run `dpkg --add-architecture arm64 && apt-get update` first',
        { cause: err },
      );
    }
    const root = join(work, 'root');
    for (const deb of readdirSync(work).filter((f) => f.endsWith('.deb'))) {
      execFileSync('dpkg', ['-x', join(work, deb), root], { stdio: 'pipe' });
    }
    if (!existsSync(join(root, LOADER))) throw new Error(`the packages did not provide ${LOADER}`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(root, dir);
    return dir;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${arm64Sysroot()}\n`);
}
