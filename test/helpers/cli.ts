import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built command line, as a user runs it after `npm run build`. */
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, in the order they arrived. */
  out: string;
}

/** Runs `node dist/cli.js ARGS…` to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const result: CliResult = { code: null, stdout: '', stderr: '', out: '' };
    child.stdout.on('data', (d: Buffer) => {
      result.stdout += d.toString();
      result.out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      result.stderr += d.toString();
      result.out += d.toString();
    });
    child.once('exit', (code) => resolve({ ...result, code }));
  });
}
