import http from 'node:http';
import https from 'node:https';
import type { CredentialInfo } from './credentials.js';
import { DeviceCredentialError } from './credentials.js';
import { GatewayApiError } from './errors.js';
import type { GatewayInfo } from './gateway-info.js';

interface Answer {
  status: number;
  text: string;
}

/** Stores a hash through a running gateway; refusals come back as the DeviceCredentialError it raised. */
export async function setHashThroughGateway(
  info: GatewayInfo,
  id: string,
  hash: string,
  mode: 'add' | 'rotate',
): Promise<void> {
  const url = new URL(`/api/devices/${encodeURIComponent(id)}/credential`, info.http);
  const answer = await request(info, url, 'PUT', JSON.stringify({ hash, mode }));
  if (answer.status === 200 || answer.status === 201) return;
  throw refusal(info, url, answer);
}

/** Removes a credential through a running gateway; false when the device had none. */
export async function removeThroughGateway(info: GatewayInfo, id: string): Promise<boolean> {
  const url = new URL(`/api/devices/${encodeURIComponent(id)}`, info.http);
  const answer = await request(info, url, 'DELETE');
  if (answer.status === 200) return true;
  if (answer.status === 404) return false;
  throw refusal(info, url, answer);
}

/** Lists credentials through a running gateway. */
export async function listThroughGateway(info: GatewayInfo): Promise<CredentialInfo[]> {
  const url = new URL('/api/devices', info.http);
  const answer = await request(info, url, 'GET');
  if (answer.status !== 200) throw refusal(info, url, answer);
  let body: unknown;
  try {
    body = JSON.parse(answer.text);
  } catch (err) {
    throw new GatewayApiError(`the gateway at ${url.origin} answered invalid JSON`, { cause: err });
  }
  const devices = (body as { devices?: unknown } | null)?.devices;
  if (!Array.isArray(devices)) {
    throw new GatewayApiError(`the gateway at ${url.origin} answered something other than a device list`);
  }
  return devices as CredentialInfo[];
}

function request(info: GatewayInfo, url: URL, method: string, body?: string): Promise<Answer> {
  const client = url.protocol === 'https:' ? https : http;
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (info.token !== undefined) headers['authorization'] = `Bearer ${info.token}`;
  return new Promise<Answer>((resolve, reject) => {
    const req = client.request(url, { method, headers });
    req.on('error', (err) =>
      reject(
        new GatewayApiError(
          `cannot reach the gateway (pid ${info.pid}) at ${url.origin}: ${err.message}. ` +
            'If it is starting or stopping, retry in a moment.',
          { cause: err },
        ),
      ),
    );
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.end(body);
  });
}

function refusal(info: GatewayInfo, url: URL, answer: Answer): Error {
  let reason = answer.text.trim();
  let code: unknown;
  try {
    const parsed = JSON.parse(answer.text) as { error?: unknown; code?: unknown };
    if (typeof parsed.error === 'string') reason = parsed.error;
    code = parsed.code;
  } catch {
    // Not JSON: the raw text says more than nothing.
  }
  if (
    code === 'VIGIL_DEVICE_ID' ||
    code === 'VIGIL_DEVICE_EXISTS' ||
    code === 'VIGIL_DEVICE_UNKNOWN' ||
    code === 'VIGIL_CREDENTIAL_HASH'
  ) {
    return new DeviceCredentialError(code, reason);
  }
  const hint =
    answer.status === 401 || answer.status === 403
      ? ` (the gateway refused ${info.token === undefined ? 'a request without a token' : 'the token in gateway.json'})`
      : '';
  return new GatewayApiError(
    `the gateway at ${url.origin} answered ${answer.status} to ${url.pathname}${hint}: ${reason || 'no reason given'}`,
  );
}
