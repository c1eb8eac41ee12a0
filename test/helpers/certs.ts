import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestPki {
  dir: string;
  /** The CA that signs everything below: give it to the listener as `--tls-ca`. */
  caCert: string;
  /** A server certificate for 127.0.0.1 and localhost, signed by the CA. */
  serverCert: string;
  serverKey: string;
  /** Makes a client certificate with this common name, signed by the CA (or by `otherCa`). */
  client(commonName: string, opts?: { signer?: 'ca' | 'rogue' }): Promise<{ cert: string; key: string }>;
  /** The CA's revocation list (PEM), revoking these certificates (files made by `client`). */
  crl(revoked: readonly string[]): Promise<Buffer>;
}

/** A throwaway PKI made with `openssl` in `dir`: a CA, a server certificate, client certificates on demand. */
export async function makePki(dir: string): Promise<TestPki> {
  const p = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => run('openssl', args, { cwd: dir });
  const newCa = async (name: string, cn: string) => {
    await openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      p(`${name}.key`),
      '-out',
      p(`${name}.crt`),
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
    );
  };
  await newCa('ca', 'Vigil Test CA');
  await newCa('rogue', 'Rogue CA');
  const issue = async (name: string, cn: string, signer: string, extensions: string) => {
    await openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      p(`${name}.key`),
      '-out',
      p(`${name}.csr`),
      '-subj',
      `/CN=${cn}`,
    );
    await run('sh', ['-c', `printf '%s\\n' "${extensions}" > ${name}.ext`], { cwd: dir });
    await openssl(
      'x509',
      '-req',
      '-in',
      p(`${name}.csr`),
      '-CA',
      p(`${signer}.crt`),
      '-CAkey',
      p(`${signer}.key`),
      '-CAcreateserial',
      '-out',
      p(`${name}.crt`),
      '-days',
      '2',
      '-extfile',
      p(`${name}.ext`),
    );
    return { cert: p(`${name}.crt`), key: p(`${name}.key`) };
  };
  const server = await issue(
    'server',
    'localhost',
    'ca',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth',
  );
  let n = 0;
  return {
    dir,
    caCert: p('ca.crt'),
    serverCert: server.cert,
    serverKey: server.key,
    client: (commonName, opts = {}) =>
      issue(`client-${n++}`, commonName, opts.signer ?? 'ca', 'extendedKeyUsage=clientAuth'),
    crl: (revoked) => makeCrl(dir, revoked),
  };
}

/** A CRL signed by `dir/ca.key`, made with `openssl ca` over a fresh database of revocations. */
async function makeCrl(dir: string, revoked: readonly string[]): Promise<Buffer> {
  const db = await mkdtemp(join(dir, 'crl-'));
  const config = [
    '[ca]',
    'default_ca = ca_default',
    '[ca_default]',
    `database = ${join(db, 'index.txt')}`,
    `crlnumber = ${join(db, 'crlnumber')}`,
    `certificate = ${join(dir, 'ca.crt')}`,
    `private_key = ${join(dir, 'ca.key')}`,
    'default_md = sha256',
    'default_crl_days = 2',
    '',
  ].join('\n');
  await writeFile(join(db, 'ca.cnf'), config);
  await writeFile(join(db, 'index.txt'), '');
  await writeFile(join(db, 'crlnumber'), '1000\n');
  const openssl = (...args: string[]) => run('openssl', ['ca', '-config', join(db, 'ca.cnf'), ...args]);
  for (const cert of revoked) await openssl('-revoke', cert);
  await openssl('-gencrl', '-out', join(db, 'crl.pem'));
  return readFile(join(db, 'crl.pem'));
}
