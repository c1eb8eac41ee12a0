import type { Readable } from 'node:stream';
import { DeviceCredentialError, type CredentialInfo } from '../credentials/index.js';
import type { DeviceExplanation } from '../dashboard/index.js';
import type { Profile } from '../shared/index.js';
import type { AuditEntry, AuditQuery, ImportSummary } from '../store/index.js';
import type { RulesStatus } from '../sync/index.js';
import { GatewayApiError } from './client-errors.js';
import type { GatewayInfo } from './gateway-info.js';
import type { UnchangedAnswer } from './routes/rules.js';

interface Answer {
  status: number;
  text: string;
}

interface RequestOptions {
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
  /** For a streamed body: the running total of bytes sent. */
  onBytes?: (bytesSent: number) => void;
}

const DEVICE_CODES = new Set([
  'VIGIL_DEVICE_ID',
  'VIGIL_DEVICE_EXISTS',
  'VIGIL_DEVICE_UNKNOWN',
  'VIGIL_CREDENTIAL_HASH',
]);

/**
 * The CLI's way into a running gateway (LevelDB allows one process per directory): its local HTTP API,
 * found in `DATA/gateway.json`, with the token from there. Failures are GatewayApiError naming the
 * gateway; a refused credential change is the DeviceCredentialError the gateway raised.
 */
export class GatewayClient {
  constructor(private readonly info: GatewayInfo) {}

  /** Streams NDJSON to the import API; `onBytes` gets the running total sent. */
  async importProfiles(
    body: Readable,
    opts: { onBytes?: (bytesSent: number) => void } = {},
  ): Promise<ImportSummary> {
    const url = this.url('/api/profiles/import');
    const answer = await this.request('POST', url, {
      headers: { 'content-type': 'application/x-ndjson' },
      body,
      ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
    });
    if (answer.status !== 200) throw this.refusal(url, answer);
    const summary = this.json(url, answer) as Partial<ImportSummary> | null;
    if (
      typeof summary !== 'object' ||
      summary === null ||
      typeof summary.imported !== 'number' ||
      typeof summary.rejected !== 'number' ||
      !Array.isArray(summary.errors)
    ) {
      throw new GatewayApiError(
        `the gateway at ${url.origin} answered something other than an import summary`,
      );
    }
    return {
      imported: summary.imported,
      rejected: summary.rejected,
      errors: summary.errors,
      elapsedMs: summary.elapsedMs ?? 0,
    };
  }

  /** A profile; undefined when the gateway has none with this id. */
  async profile(id: string): Promise<Profile | undefined> {
    const url = this.url(`/api/profiles/${encodeURIComponent(id)}`);
    const answer = await this.request('GET', url);
    if (answer.status === 404) return undefined;
    if (answer.status !== 200) throw this.refusal(url, answer);
    const profile = this.json(url, answer);
    if (typeof profile !== 'object' || profile === null || Array.isArray(profile)) {
      throw new GatewayApiError(`the gateway at ${url.origin} answered something other than a profile`);
    }
    return profile as Profile;
  }

  /** The audit log (`GET /api/actions/log`), newest first. */
  async auditLog(query: AuditQuery): Promise<AuditEntry[]> {
    const url = this.url('/api/actions/log');
    if (query.actor !== undefined) url.searchParams.set('actor', query.actor);
    if (query.suppressed === true) url.searchParams.set('suppressed', 'true');
    if (query.limit !== undefined) url.searchParams.set('limit', String(query.limit));
    return (await this.getList(url, 'entries', 'an audit log')) as AuditEntry[];
  }

  /** Every device with a credential, without hashes. */
  async devices(): Promise<CredentialInfo[]> {
    return (await this.getList(this.url('/api/devices'), 'devices', 'a device list')) as CredentialInfo[];
  }

  /** Stores a credential hash (the secret stays with the caller). */
  async setCredentialHash(id: string, hash: string, mode: 'add' | 'rotate', overlapMs = 0): Promise<void> {
    const url = this.url(`/api/devices/${encodeURIComponent(id)}/credential`);
    const answer = await this.request('PUT', url, {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(overlapMs > 0 ? { hash, mode, overlapMs } : { hash, mode }),
    });
    if (answer.status !== 200 && answer.status !== 201) throw this.refusal(url, answer);
  }

  /** Removes a credential (and ends the device's connection); false when the device had none. */
  async removeCredential(id: string): Promise<boolean> {
    const url = this.url(`/api/devices/${encodeURIComponent(id)}`);
    const answer = await this.request('DELETE', url);
    if (answer.status === 200) return true;
    if (answer.status === 404) return false;
    throw this.refusal(url, answer);
  }

  /** Where a device stands in every scenario, and its latest decisions; undefined for a device the gateway does not know. */
  async explain(id: string): Promise<DeviceExplanation | undefined> {
    const url = this.url(`/api/devices/${encodeURIComponent(id)}/explain`);
    const answer = await this.request('GET', url);
    if (answer.status === 404) return undefined;
    if (answer.status !== 200) throw this.refusal(url, answer);
    const body = this.json(url, answer) as Partial<DeviceExplanation> | null;
    if (!Array.isArray(body?.scenarios))
      throw new GatewayApiError(`the gateway at ${url.origin} answered something other than an explanation`);
    return body as DeviceExplanation;
  }

  /** Sends a rules bundle, which the gateway checks under its own trusted keys and applies. */
  async applyBundle(bundle: Buffer): Promise<RulesStatus | UnchangedAnswer> {
    const url = this.url('/api/rules/apply');
    const answer = await this.request('POST', url, {
      headers: { 'content-type': 'application/cose; cose-type="cose-sign1"' },
      body: bundle,
    });
    if (answer.status !== 200 && answer.status !== 422) throw this.refusal(url, answer);
    const body = this.json(url, answer) as { status?: unknown } | null;
    if (typeof body?.status !== 'string') throw this.refusal(url, answer);
    return body as RulesStatus | UnchangedAnswer;
  }

  /** GETs `url` and reads the array its JSON answer holds in `field`; `what` names that list in errors. */
  private async getList(url: URL, field: string, what: string): Promise<unknown[]> {
    const answer = await this.request('GET', url);
    if (answer.status !== 200) throw this.refusal(url, answer);
    const list = (this.json(url, answer) as Record<string, unknown> | null)?.[field];
    if (!Array.isArray(list)) {
      throw new GatewayApiError(`the gateway at ${url.origin} answered something other than ${what}`);
    }
    return list as unknown[];
  }

  private url(path: string): URL {
    return new URL(path, this.info.http);
  }

  private request(method: string, url: URL, opts: RequestOptions = {}): Promise<Answer> {
    const { info } = this;
    // Loaded on first use: the gateway's start does not need them (and a startup snapshot cannot hold them).
    const client = process.getBuiltinModule(url.protocol === 'https:' ? 'node:https' : 'node:http');
    const headers = { ...opts.headers };
    if (info.token !== undefined) headers['authorization'] = `Bearer ${info.token}`;
    const { body } = opts;
    if (typeof body === 'string' || Buffer.isBuffer(body))
      headers['content-length'] = String(Buffer.byteLength(body));
    return new Promise<Answer>((resolve, reject) => {
      const unreachable = (err: Error): void =>
        reject(
          new GatewayApiError(
            `cannot reach the gateway (pid ${info.pid}) at ${url.origin}: ${err.message}. ` +
              'If it is starting or stopping, retry in a moment.',
            { cause: err },
          ),
        );
      const req = client.request(url, { method, headers });
      req.on('error', unreachable);
      req.on('response', (res) => {
        // An answer before the whole body was sent is a refusal: stop sending.
        if (body !== undefined && typeof body === 'object' && !Buffer.isBuffer(body) && !body.readableEnded) {
          body.unpipe(req);
          body.destroy();
        }
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', unreachable);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
      });
      if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
        req.end(body);
        return;
      }
      let sent = 0;
      body.on('data', (chunk: Buffer | string) => {
        sent += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
        opts.onBytes?.(sent);
      });
      body.on('error', (err) => {
        req.destroy();
        reject(new GatewayApiError(`reading the input failed: ${err.message}`, { cause: err }));
      });
      body.pipe(req);
    });
  }

  private json(url: URL, answer: Answer): unknown {
    try {
      return JSON.parse(answer.text);
    } catch (err) {
      throw new GatewayApiError(`the gateway at ${url.origin} answered ${answer.status} with invalid JSON`, {
        cause: err,
      });
    }
  }

  /** The error a refusal stands for: what the gateway said, with a hint for a refused token. */
  private refusal(url: URL, answer: Answer): Error {
    const { code, message } = errorOf(answer.text);
    if (code !== undefined && DEVICE_CODES.has(code)) {
      return new DeviceCredentialError(code as DeviceCredentialError['code'], message);
    }
    const hint =
      answer.status === 401 || answer.status === 403
        ? ` (the gateway refused ${this.info.token === undefined ? 'a request without a token' : 'the token in gateway.json'})`
        : '';
    return new GatewayApiError(
      `the gateway at ${url.origin} answered ${answer.status} to ${url.pathname}${hint}: ${message || 'no reason given'}`,
    );
  }
}

/** The code and message of an error answer: `{"error": {"code", "message"}}`, or the older `{"error", "code"}`. */
function errorOf(text: string): { code?: string; message: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: the raw text says more than nothing.
    return { message: text.trim() };
  }
  const body = parsed as { error?: unknown; code?: unknown } | null;
  const error = body?.error;
  if (typeof error === 'string')
    return { message: error, ...(typeof body?.code === 'string' ? { code: body.code } : {}) };
  if (typeof error === 'object' && error !== null) {
    const { code, message } = error as { code?: unknown; message?: unknown };
    return {
      message: typeof message === 'string' ? message : text.trim(),
      ...(typeof code === 'string' ? { code } : {}),
    };
  }
  return { message: text.trim() };
}
