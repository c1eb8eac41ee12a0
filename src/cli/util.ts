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

/**
 * What a command prints for an error: a string (a command's own message) or a VigilError as one plain
 * line, the error's hint on the next; an error nobody raised on purpose keeps its stack.
 */
export function errorText(err: unknown): string {
  if (typeof err === 'string') return `vigil: ${err}\n`;
  if (err instanceof VigilError) {
    return `vigil: ${err.message}\n${err.hint === undefined ? '' : `hint: ${err.hint}\n`}`;
  }
  return `vigil: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`;
}

/** Prints a known error as one plain line (no stack trace), its hint below, and exits; unknown errors keep their stack. */
export function exitWithError(err: unknown, code = 2): never {
  process.stderr.write(errorText(err));
  process.exit(code);
}

/** The data directory a command was pointed at holds no Vigil store. */
export function noData(dataDir: string): VigilError {
  return new VigilError(
    'VIGIL_DATA_MISSING',
    `there is no Vigil data in ${dataDir}: pass the gateway's data directory with --data DIR`,
  );
}

/** A command's help below its options: a paragraph (one string a line), then what its exit statuses mean. */
export function helpAfter(paragraph: readonly string[], exitStatus: string): string {
  return ['', ...paragraph, '', `Exit status: ${exitStatus}`].join('\n');
}
