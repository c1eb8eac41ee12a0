import { readFile } from 'node:fs/promises';
import { ConfigError, TlsFileError } from '../shared/index.js';

/** PEM material for the connection to the cloud broker. */
export interface UpstreamTls {
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
}

/**
 * Reads `upstream.tls`: a CA to trust beyond the system's, and a client certificate with its key (both
 * or neither). Undefined when nothing is set. Throws an error naming the setting.
 */
export async function readUpstreamTls(files: {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}): Promise<UpstreamTls | undefined> {
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new ConfigError('upstream.tls.cert and upstream.tls.key go together: set both');
  }
  if (files.ca === undefined && files.cert === undefined) return undefined;
  const read = async (path: string | undefined, setting: string): Promise<Buffer | undefined> => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path);
    } catch (err) {
      throw new TlsFileError(`${setting}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const [ca, cert, key] = await Promise.all([
    read(files.ca, 'upstream.tls.ca'),
    read(files.cert, 'upstream.tls.cert'),
    read(files.key, 'upstream.tls.key'),
  ]);
  return { ca, cert, key };
}
