import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Site {
  gateway: Gateway;
  pki: TestPki;
  crlFile: string;
  /** What the gateway logged, one object per line. */
  logged: Array<{ msg?: string; reason?: string }>;
}

async function site(revokedAtStart: (pki: TestPki) => Promise<string[]>): Promise<Site> {
  const dir = await tempDir('vigil-crl-');
  cleanups.push(() => dir.remove());
  const pki = await makePki(dir.path);
  const crlFile = join(dir.path, 'revoked.pem');
  await writeFile(crlFile, await pki.crl(await revokedAtStart(pki)));
  const logged: Site['logged'] = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void logged.push(JSON.parse(line) as Site['logged'][number]) },
  );
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: join(dir.path, 'data'),
      mqtt: {
        host: '127.0.0.1',
        port: 0,
        tls: { port: 0, cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert, crl: crlFile },
      },
      http: { port: 0 },
    }),
    { logger },
  );
  cleanups.push(() => gateway.stop());
  return { gateway, pki, crlFile, logged };
}

/** Connects with a client certificate; resolves to whether the gateway let it in. */
async function connects(s: Site, id: string, files: { cert: string; key: string }): Promise<boolean> {
  const client = mqtt.connect(`mqtts://127.0.0.1:${s.gateway.mqtts?.port ?? 0}`, {
    clientId: id,
    cert: await readFile(files.cert),
    key: await readFile(files.key),
    ca: await readFile(s.pki.caCert),
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  });
  // A refused handshake closes the socket without an MQTT error: mqtt.js' connectAsync would wait forever.
  const connected = await new Promise<boolean>((resolve) => {
    client.once('connect', () => resolve(true));
    client.once('close', () => resolve(false));
    client.on('error', () => undefined);
  });
  await client.endAsync(true);
  return connected;
}

async function refusals(s: Site, reason: string): Promise<number> {
  const metric = await s.gateway.metrics.registry.getSingleMetric('vigil_auth_refusals_total')?.get();
  return metric?.values.find((v) => v.labels['reason'] === reason)?.value ?? 0;
}

/** Waits for the gateway to log `msg` for the `n`th time. */
async function logs(s: Site, msg: string, n = 1): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (s.logged.filter((l) => l.msg === msg).length < n) {
    if (Date.now() > deadline) throw new Error(`never logged "${msg}"`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('certificate revocation (mqtt.tls.crl)', () => {
  test('a revoked certificate is refused at the handshake; a valid one connects', async () => {
    let revoked = { cert: '', key: '' };
    const s = await site(async (pki) => {
      revoked = await pki.client('dev-lost');
      return [revoked.cert];
    });
    const valid = await s.pki.client('dev-1');
    expect(await connects(s, 'dev-lost', revoked)).toBe(false);
    expect(await refusals(s, 'certificate-revoked')).toBe(1);
    expect(s.logged).toContainEqual(
      expect.objectContaining({ msg: 'mqtt TLS client certificate refused', reason: 'CERT_REVOKED' }),
    );
    expect(await connects(s, 'dev-1', valid)).toBe(true);
  });

  test('revoking after start refuses the next connection without a restart; a bad file keeps the CRL in force', async () => {
    const s = await site(() => Promise.resolve([]));
    const device = await s.pki.client('dev-2');
    const other = await s.pki.client('dev-3');
    expect(await connects(s, 'dev-2', device)).toBe(true);

    // Replaced the way CRL distribution usually does it: a new file renamed over the old one.
    await writeFile(`${s.crlFile}.new`, await s.pki.crl([device.cert]));
    await rename(`${s.crlFile}.new`, s.crlFile);
    await logs(s, 'mqtt TLS CRL reloaded');
    expect(await connects(s, 'dev-2', device)).toBe(false);
    expect(await refusals(s, 'certificate-revoked')).toBe(1);
    expect(await connects(s, 'dev-3', other)).toBe(true);

    // Rewritten in place, half-done: not a CRL, so the one in force stays.
    await writeFile(s.crlFile, '-----BEGIN X509 CRL-----\nMIIB\n');
    await logs(s, 'mqtt TLS CRL not reloaded; the previous one stays in force');
    expect(await connects(s, 'dev-2', device)).toBe(false);
    expect(await connects(s, 'dev-3', other)).toBe(true);
  });

  test('a CRL without a CA, or a file that is not a CRL, stops start-up with the setting named', async () => {
    const dir = await tempDir('vigil-crl-');
    cleanups.push(() => dir.remove());
    const pki = await makePki(dir.path);
    const notCrl = join(dir.path, 'not-a-crl.pem');
    await writeFile(notCrl, 'hello\n');
    const start = (tls: Record<string, string>) =>
      startGateway(
        parseConfig({
          data: join(dir.path, 'data'),
          mqtt: {
            host: '127.0.0.1',
            port: 0,
            tls: { port: 0, cert: pki.serverCert, key: pki.serverKey, ...tls },
          },
          http: { port: 0 },
          log: { level: 'silent' },
        }),
      );
    await expect(start({ crl: notCrl })).rejects.toThrow(
      /mqtt.tls.crl revokes client certificates: it needs mqtt.tls.ca/,
    );
    await expect(start({ ca: pki.caCert, crl: notCrl })).rejects.toThrow(/mqtt.tls.crl: .*no PEM CRL/);
  });
});
