import { readFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import type { SecureContextOptions, Server, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError, listenHint, TlsFileError } from '../shared/index.js';
import { crlProblem, watchCrl } from './crl-watch.js';
import { LISTEN_BACKLOG } from './limits.js';
import type { DeviceGuard } from './guard.js';

/** PEM material of a TLS endpoint. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** With a CA, the listener requires client certificates signed by it. */
  ca?: Buffer | undefined;
  /** Revoked client certificates (a PEM CRL issued by the CA); only with `ca`. */
  crl?: Buffer | undefined;
  /** The file `crl` was read from: reloaded when it changes. */
  crlFile?: string | undefined;
}

export interface TlsListenerOptions extends TlsMaterial {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** How often `crlFile` is looked at; default 2 s. */
  crlPollMs?: number | undefined;
}

/**
 * Without a guard, a handshake that has not finished by then is dropped: a half-open connection holds a
 * slot. With one, the guard's connect timeout covers the handshake (it is what a power cut's reconnect
 * storm waits on), and Node's own timer is left a little longer so that the guard's, counted and
 * logged as such, comes first.
 */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Reads PEM files named in the configuration; `where` names the setting in errors (`mqtt.tls`).
 * Undefined when neither a certificate nor a key is set.
 */
export async function readTlsFiles(
  files: {
    cert?: string | undefined;
    key?: string | undefined;
    ca?: string | undefined;
    crl?: string | undefined;
  },
  where: string,
): Promise<TlsMaterial | undefined> {
  if (files.cert === undefined && files.key === undefined) {
    if (files.ca !== undefined) throw new ConfigError(`${where}.ca needs ${where}.cert and ${where}.key`);
    if (files.crl !== undefined) throw new ConfigError(`${where}.crl needs ${where}.cert and ${where}.key`);
    return undefined;
  }
  if (files.cert === undefined || files.key === undefined) {
    throw new ConfigError(`${where}.cert and ${where}.key go together: set both`);
  }
  if (files.crl !== undefined && files.ca === undefined) {
    throw new ConfigError(`${where}.crl revokes client certificates: it needs ${where}.ca`);
  }
  const [cert, key, ca, crl] = await Promise.all([
    readPem(files.cert, `${where}.cert`),
    readPem(files.key, `${where}.key`),
    files.ca === undefined ? undefined : readPem(files.ca, `${where}.ca`),
    files.crl === undefined ? undefined : readPem(files.crl, `${where}.crl`),
  ]);
  if (crl === undefined) return { cert, key, ca };
  const problem = crlProblem(crl);
  if (problem !== undefined) throw new ConfigError(`${where}.crl: ${files.crl}: ${problem}`);
  return { cert, key, ca, crl, crlFile: files.crl };
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
  // Loaded when TLS is on, not at import: a startup snapshot cannot hold `node:tls`.
  const { createSecureContext, createServer } = process.getBuiltinModule('node:tls');
  let server: Server;
  try {
    server = createServer({
      ...contextOptions(opts, opts.crl),
      requestCert: requireCert,
      // Checked below instead, where a refusal can be logged with its reason and peer: with `true`, Node
      // drops a connection whose certificate does not verify without a word.
      rejectUnauthorized: false,
      handshakeTimeout: deps.guard !== undefined ? deps.guard.connectTimeoutMs + 1_000 : HANDSHAKE_TIMEOUT_MS,
    });
  } catch (err) {
    throw new TlsFileError(
      `mqtt.tls: the certificate, key, CA or CRL cannot be used: ${(err as Error).message}`,
      { cause: err },
    );
  }
  // Raw sockets still in their handshake, by their peer: not yet the broker's, so closed here.
  const handshaking = new Map<string, Socket>();
  server.on('connection', (raw: Socket) => {
    if (deps.guard !== undefined && !deps.guard.admit(raw)) return;
    const peer = peerKey(raw);
    handshaking.set(peer, raw);
    raw.once('close', () => {
      if (handshaking.get(peer) === raw) handshaking.delete(peer);
    });
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    // Node does not say which raw socket a TLS one wraps; both have the same peer on this listener.
    const raw = handshaking.get(peerKey(socket));
    handshaking.delete(peerKey(socket));
    if (requireCert && !socket.authorized) {
      const presented = Object.keys(socket.getPeerCertificate()).length > 0;
      const reason = presented ? String(socket.authorizationError) : 'no client certificate';
      if (deps.guard !== undefined) deps.guard.certificateRefused(socket, reason);
      else deps.logger.warn({ reason, address: socket.remoteAddress }, 'mqtt TLS client certificate refused');
      socket.destroy();
      return;
    }
    deps.guard?.secured(
      socket,
      { required: requireCert, commonName: requireCert ? commonNameOf(socket) : undefined },
      raw ?? socket,
    );
    deps.accept(socket);
  });
  server.on('tlsClientError', (err, socket) => {
    if (deps.guard !== undefined) deps.guard.handshakeFailed(err, socket);
    else deps.logger.warn({ err: err.message, address: socket.remoteAddress }, 'mqtt TLS handshake refused');
  });
  server.on('error', (err) => deps.logger.error({ err }, 'mqtt TLS listener error'));

  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: opts.port, host: opts.host, backlog: LISTEN_BACKLOG }, () => {
      server.removeListener('error', reject);
      resolve(server.address() as AddressInfo);
    });
  }).catch((err: unknown) => {
    throw new ConfigError(`mqtt TLS cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}`, {
      cause: err,
      hint: listenHint(err, 'mqtt.tls.port (--tls-port)', 'mqtt.tls.host'),
    });
  });
  const crlWatch =
    opts.crlFile === undefined
      ? undefined
      : watchCrl(opts.crlFile, {
          pollMs: opts.crlPollMs,
          logger: deps.logger,
          apply: (crl) => {
            const options = contextOptions(opts, crl);
            // Built once to find out whether OpenSSL takes it: setSecureContext keeps parts of a bad one.
            createSecureContext(options);
            server.setSecureContext(options);
          },
        });
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        crlWatch?.close();
        server.close(() => resolve());
        for (const raw of handshaking.values()) raw.destroy();
      }),
  };
}

/** What the secure context is made of; a new CRL makes a new context. */
function contextOptions(material: TlsMaterial, crl: Buffer | undefined): SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    ...(material.ca !== undefined ? { ca: material.ca } : {}),
    // With a CRL, OpenSSL checks every client certificate against it (X509_V_FLAG_CRL_CHECK).
    ...(crl !== undefined ? { crl } : {}),
    minVersion: 'TLSv1.2',
  };
}

function peerKey(socket: Socket): string {
  return `${socket.localAddress ?? ''}|${socket.remoteAddress ?? ''}|${socket.remotePort ?? 0}`;
}

/** The subject CN of the verified peer certificate; undefined when there is none or several. */
function commonNameOf(socket: TLSSocket): string | undefined {
  const cert = socket.getPeerCertificate();
  const cn: unknown = (cert as { subject?: { CN?: unknown } } | null)?.subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}
