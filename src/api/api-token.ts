import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { ConfigError } from '../shared/index.js';

/** Paths answered without the token: a liveness probe rarely carries credentials, and says little. */
export const OPEN_PATHS: readonly string[] = ['/healthz'];

/** Whether `host` only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./i.test(h);
  return false;
}

/**
 * The check the local HTTP API applies to requests, or undefined when it needs none (loopback and no
 * token configured). Binding anywhere else without a token is refused at start-up: the API can import
 * profiles and credentials.
 */
export function apiAuthorizer(http: {
  host: string;
  token?: string | undefined;
}): ((req: IncomingMessage) => boolean) | undefined {
  if (http.token === undefined) {
    if (isLoopbackHost(http.host)) return undefined;
    throw new ConfigError(
      `http.host ${http.host} is not a loopback address: the local API then needs a token. ` +
        'Set http.token (or VIGIL_HTTP_TOKEN), at least 16 characters, e.g. `openssl rand -hex 32`',
    );
  }
  const expected = digest(http.token);
  return (req) => {
    const presented = presentedToken(req.headers.authorization);
    // Compared as digests: equal lengths for timingSafeEqual, and nothing about the token's length leaks.
    return presented !== undefined && timingSafeEqual(digest(presented), expected);
  };
}

/**
 * `Bearer TOKEN` (the CLI, scrapers), or `Basic` with the token as the password and any user name, so
 * that a browser can open the dashboard: it asks once and sends it with every request after.
 */
function presentedToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const space = header.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return value;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
