import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayApiError } from './client-errors.js';

/** What a running gateway records in its data directory so that commands can reach its local API. */
export interface GatewayInfo {
  pid: number;
  /** Base URL of its HTTP API, e.g. `http://127.0.0.1:8080`. */
  http: string;
  token?: string;
}

const GATEWAY_INFO_FILE = 'gateway.json';

export function gatewayInfoPath(dataDir: string): string {
  return join(dataDir, GATEWAY_INFO_FILE);
}

/** Reads `DIR/gateway.json`; undefined when there is none, GatewayApiError when it is malformed. */
export async function readGatewayInfo(dataDir: string): Promise<GatewayInfo | undefined> {
  const path = gatewayInfoPath(dataDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new GatewayApiError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new GatewayApiError(`${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const info = value as Partial<Record<keyof GatewayInfo, unknown>> | null;
  if (
    typeof info !== 'object' ||
    info === null ||
    !Number.isSafeInteger(info.pid) ||
    typeof info.http !== 'string' ||
    !URL.canParse(info.http) ||
    (info.token !== undefined && typeof info.token !== 'string')
  ) {
    throw new GatewayApiError(
      `${path} should be {"pid": N, "http": "http://127.0.0.1:PORT", "token"?: "..."}`,
    );
  }
  const result: GatewayInfo = { pid: info.pid as number, http: info.http };
  if (typeof info.token === 'string') result.token = info.token;
  return result;
}

/** Whether a process with this id exists (signal 0 checks without signalling). */
export function isProcessAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
