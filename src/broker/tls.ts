import { readFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError, TlsFileError } from '../shared/index.js';
import { listenHint } from './errors.js';
import type { DeviceGuard } from './guard.js';

/** PEM material of a TLS endpoint. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** With a CA, the listener requires client certificates signed by it. */
  ca?: Buffer | undefined;
}

export interface TlsListenerOptions extends TlsMaterial {
  host: string;
  /** 0 picks a free port. */
  port: number;
}

/** A handshake that has not finished by then is dropped: a half-open connection holds a slot. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Reads PEM files named in the configuration; `where` names the setting in errors (`mqtt.tls`).
 * Undefined when neither a certificate nor a key is set.
 */
export async function readTlsFiles(
  files: { cert?: string | undefined; key?: string | undefined; ca?: string | undefined },
  where: string,
): Promise<TlsMaterial | undefined> {
  if (files.cert === undefined && files.key === undefined) {
    if (files.ca !== undefined) throw new ConfigError(`${where}.ca needs ${where}.cert and ${where}.key`);
    return undefined;
  }
  if (files.cert === undefined || files.key === undefined) {
    throw new ConfigError(`${where}.cert and ${where}.key go together: set both`);
  }
  const [cert, key, ca] = await Promise.all([
    readPem(files.cert, `${where}.cert`),
    readPem(files.key, `${where}.key`),
    files.ca === undefined ? undefined : readPem(files.ca, `${where}.ca`),
  ]);
  return { cert, key, ca };
}

/** Reads one PEM file, or throws TlsFileError naming the setting. */
async function readPem(path: string, setting: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new TlsFileError(`${setting}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export interface TlsListener {
  readonly address: AddressInfo;
  /** Stops accepting and drops handshakes in progress; established connections are the broker's to close. */
  close(): Promise<void>;
}

/**
 * A TLS listener handing its connections to `accept` once their handshake is done. With a CA, a client
 * without a certificate signed by it never gets past the handshake, and the certificate's common name
 * is what the guard takes as the device id.
 */
export async function startTlsListener(
  opts: TlsListenerOptions,
  deps: { guard: DeviceGuard | undefined; logger: Logger; accept: (socket: Socket) => void },
): Promise<TlsListener> {
  const requireCert = opts.ca !== undefined;
  let server: Server;
  try {
    server = createServer({
      cert: opts.cert,
      key: opts.key,
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
      requestCert: requireCert,
      // Checked below instead, where a refusal can be logged with its reason and peer: with `true`, Node
      // drops a connection whose certificate does not verify without a word.
      rejectUnauthorized: false,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      minVersion: 'TLSv1.2',
    });
  } catch (err) {
    throw new TlsFileError(`mqtt.tls: the certificate, key or CA cannot be used: ${(err as Error).message}`, {
      cause: err,
    });
  }
  // Raw sockets still in their handshake: not yet the broker's, so closed here.
  const handshaking = new Set<Socket>();
  server.on('connection', (raw: Socket) => {
    if (deps.guard !== undefined && !deps.guard.admit(raw)) return;
    handshaking.add(raw);
    raw.once('close', () => handshaking.delete(raw));
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    if (requireCert && !socket.authorized) {
      const presented = Object.keys(socket.getPeerCertificate()).length > 0;
      const reason = presented ? String(socket.authorizationError) : 'no client certificate';
      if (deps.guard !== undefined) deps.guard.certificateRefused(socket, reason);
      else deps.logger.warn({ reason, address: socket.remoteAddress }, 'mqtt TLS client certificate refused');
      socket.destroy();
      return;
    }
    deps.guard?.secured(socket, {
      required: requireCert,
      commonName: requireCert ? commonNameOf(socket) : undefined,
    });
    deps.accept(socket);
  });
  server.on('tlsClientError', (err, socket) => {
    if (deps.guard !== undefined) deps.guard.handshakeFailed(err, socket);
    else deps.logger.warn({ err: err.message, address: socket.remoteAddress }, 'mqtt TLS handshake refused');
  });
  server.on('error', (err) => deps.logger.error({ err }, 'mqtt TLS listener error'));

  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.removeListener('error', reject);
      resolve(server.address() as AddressInfo);
    });
  }).catch((err: unknown) => {
    throw new ConfigError(`mqtt TLS cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}`, {
      cause: err,
      hint: listenHint(err, 'mqtt.tls.port (--tls-port)', 'mqtt.tls.host'),
    });
  });
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const raw of handshaking) raw.destroy();
      }),
  };
}

/** The subject CN of the verified peer certificate; undefined when there is none or several. */
function commonNameOf(socket: TLSSocket): string | undefined {
  const cert = socket.getPeerCertificate();
  const cn: unknown = (cert as { subject?: { CN?: unknown } } | null)?.subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}
