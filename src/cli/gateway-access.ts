import { join } from 'node:path';
import { StoreLockedError, VigilError } from '../shared/index.js';
import { gatewayInfoPath, isProcessAlive, readGatewayInfo, type GatewayInfo } from '../api/index.js';
import { openStore, type Store } from '../store/index.js';

/** How a command reaches the data: the store itself, or the running gateway that holds it. */
export type Access = { kind: 'local'; store: Store } | { kind: 'gateway'; info: GatewayInfo };

// LevelDB allows one process per directory: when a gateway has it, its HTTP API is the way in.
export async function openOrFindGateway(dataDir: string, opts: { readOnly?: boolean } = {}): Promise<Access> {
  try {
    return { kind: 'local', store: await openStore(dataDir, { createIfMissing: opts.readOnly !== true }) };
  } catch (err) {
    if (!(err instanceof StoreLockedError)) throw err;
  }
  const info = await readGatewayInfo(dataDir);
  const marker = gatewayInfoPath(dataDir);
  const findHolder = `\`fuser -v ${join(dataDir, 'LOCK')}\` shows which process holds it`;
  if (info === undefined) {
    throw new DataDirBusyError(
      `${dataDir} is in use by another process, and no running gateway is recorded in ${marker}. ` +
        `Wait for that process to finish (another vigil command?) or stop it, then retry; ${findHolder}.`,
    );
  }
  if (!isProcessAlive(info.pid)) {
    throw new DataDirBusyError(
      `${dataDir} is locked, but the gateway recorded in ${marker} (pid ${info.pid}) is gone. ` +
        `Another process holds the directory now: wait for it or stop it (${findHolder}), then retry. ` +
        `The stale ${marker} can be deleted.`,
    );
  }
  return { kind: 'gateway', info };
}

/** The data directory is locked and there is no running gateway to go through. */
class DataDirBusyError extends VigilError {
  constructor(message: string) {
    super('VIGIL_STORE_LOCKED', message);
  }
}
