import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';

export interface CrlWatchOptions {
  /** How often the file is looked at (a stat); default 2 s. */
  pollMs?: number | undefined;
  /** How long the file must stay unchanged before it is read, so a file being written is not read half-done. */
  settleMs?: number | undefined;
  logger: Logger;
  /** Puts a CRL in force; throws when it cannot be used (the previous one then stays). */
  apply: (crl: Buffer) => void;
}

const DEFAULT_POLL_MS = 2_000;
const DEFAULT_SETTLE_MS = 250;

/**
 * Reloads a CRL file when it changes. It polls the file's status rather than using fs.watch: a CRL is
 * usually replaced by renaming a new file over the old one, which an inotify watch on the old file
 * would not see, and a stat every few seconds costs nothing. A reload that fails (the file missing, not
 * a CRL, refused by OpenSSL) keeps the CRL in force and says why in the log.
 */
export function watchCrl(file: string, opts: CrlWatchOptions): { close(): void } {
  const settleMs = opts.settleMs ?? DEFAULT_SETTLE_MS;
  let settle: NodeJS.Timeout | undefined;
  let reloading: Promise<void> = Promise.resolve();

  const reload = async (): Promise<void> => {
    let crl: Buffer;
    try {
      crl = await readFile(file);
      const problem = crlProblem(crl);
      if (problem !== undefined) throw new Error(problem);
      opts.apply(crl);
    } catch (err) {
      opts.logger.warn(
        { file, reason: (err as Error).message },
        'mqtt TLS CRL not reloaded; the previous one stays in force',
      );
      return;
    }
    opts.logger.info({ file, bytes: crl.length }, 'mqtt TLS CRL reloaded');
  };
  const onChange = (now: Stats, before: Stats): void => {
    if (now.mtimeMs === before.mtimeMs && now.ino === before.ino && now.size === before.size) return;
    clearTimeout(settle);
    settle = setTimeout(() => {
      reloading = reloading.then(reload);
    }, settleMs);
    settle.unref();
  };
  watchFile(file, { interval: opts.pollMs ?? DEFAULT_POLL_MS, persistent: false }, onChange);
  return {
    close: () => {
      clearTimeout(settle);
      unwatchFile(file, onChange);
    },
  };
}

/** Why `pem` cannot be a CRL file, or undefined; OpenSSL has the last word on the rest. */
export function crlProblem(pem: Buffer): string | undefined {
  const text = pem.toString('latin1');
  if (!text.includes('-----BEGIN X509 CRL-----') || !text.includes('-----END X509 CRL-----')) {
    return 'no PEM CRL (-----BEGIN X509 CRL-----) in the file';
  }
  return undefined;
}
