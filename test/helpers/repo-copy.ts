import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, realpathSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root directory. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Copies the repository's tracked files as they are in the working tree, and links node_modules as installed. */
export function copyRepository(to: string): void {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0');
  for (const file of files.filter((f) => f !== '')) {
    mkdirSync(dirname(join(to, file)), { recursive: true });
    try {
      copyFileSync(join(ROOT, file), join(to, file));
    } catch {
      // A file deleted in the working tree and not yet committed.
    }
  }
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(to, 'node_modules'));
}

/**
 * A new user's shell environment: the machine's own Node and npm first on PATH, not the pinned Node that npm
 * scripts put there, and no `npm_*` variables inherited from the npm script that started the tests.
 */
export function userShellEnv(): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? '')
    .split(':')
    .filter((p) => !p.includes('node_modules'))
    .join(':');
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: path };
  for (const key of Object.keys(env)) if (key.startsWith('npm_')) delete env[key];
  return env;
}
