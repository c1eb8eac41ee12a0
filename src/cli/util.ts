import { InvalidArgumentError } from 'commander';
import { VigilError } from '../shared/index.js';

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError('expected a port from 0 to 65535');
  return n;
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
}

/** Prints a known error as one plain line (no stack trace) and exits; unknown errors keep their stack. */
export function exitWithError(err: unknown, code = 2): never {
  if (err instanceof VigilError) process.stderr.write(`vigil: ${err.message}\n`);
  else
    process.stderr.write(
      `vigil: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  process.exit(code);
}
