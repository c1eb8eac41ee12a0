import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VigilError, type VigilErrorOptions } from '../shared/index.js';

/** A public key the gateway accepts bundles from. */
export interface TrustedKey {
  /** Short id of the key: the first 8 bytes of the SHA-256 of its SubjectPublicKeyInfo, in hex. */
  id: string;
  key: KeyObject;
  /** The file it was read from, for the log. */
  source: string;
}

/** A signing key for `vigil rules bundle`. */
export interface SigningKey {
  id: string;
  key: KeyObject;
}

/** A key file is missing, unreadable or not an Ed25519 key. Bad start-up configuration. */
export class KeyFileError extends VigilError {
  constructor(message: string, options?: VigilErrorOptions) {
    super('VIGIL_KEY_FILE', message, options);
  }
}

const PRIVATE_KEY_FILE = 'private.pem';
const PUBLIC_KEY_FILE = 'public.pem';

/** The short id of an Ed25519 public key (or of the public half of a private one). */
export function keyId(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const spki = pub.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex').slice(0, 16);
}

/**
 * Makes an Ed25519 key pair as `DIR/private.pem` (PKCS#8, mode 0600) and `DIR/public.pem` (SPKI).
 * Refuses to replace existing files: a lost private key cannot be recovered, a replaced one is lost.
 */
export async function writeKeyPair(
  dir: string,
): Promise<{ privatePath: string; publicPath: string; id: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  await mkdir(dir, { recursive: true });
  const privatePath = join(dir, PRIVATE_KEY_FILE);
  const publicPath = join(dir, PUBLIC_KEY_FILE);
  try {
    await writeFile(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      flag: 'wx',
      mode: 0o600,
    });
    await writeFile(publicPath, publicKey.export({ type: 'spki', format: 'pem' }), {
      flag: 'wx',
      mode: 0o644,
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new KeyFileError(`${dir} already holds a key pair; choose another directory`, { cause: err });
    }
    throw new KeyFileError(`cannot write the key pair in ${dir}: ${(err as Error).message}`, { cause: err });
  }
  return { privatePath, publicPath, id: keyId(publicKey) };
}

/** Reads an Ed25519 private key (PEM, PKCS#8). */
export async function readSigningKey(path: string): Promise<SigningKey> {
  const { key } = await readPemKey(path, 'private');
  requireEd25519(path, key);
  return { id: keyId(key), key };
}

/** Reads an Ed25519 public key (PEM, SPKI). */
export async function readTrustedKey(path: string): Promise<TrustedKey> {
  const { text, key } = await readPemKey(path, 'public');
  if (key.type !== 'public' || text.includes('PRIVATE KEY')) {
    // createPublicKey derives the public half of a private key: a private key has no place on a gateway.
    throw new KeyFileError(`${path} holds a private key; give the gateway the public key only`);
  }
  requireEd25519(path, key);
  return { id: keyId(key), key, source: path };
}

/** A key file's text and the key it holds, read as the private or the public half of a pair. */
async function readPemKey(
  path: string,
  half: 'private' | 'public',
): Promise<{ text: string; key: KeyObject }> {
  const text = await readKeyFile(path);
  try {
    return { text, key: half === 'private' ? createPrivateKey(text) : createPublicKey(text) };
  } catch (err) {
    throw new KeyFileError(`${path} is not a ${half} key in PEM: ${(err as Error).message}`, { cause: err });
  }
}

function requireEd25519(path: string, key: KeyObject): void {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new KeyFileError(
      `${path} is a ${key.asymmetricKeyType ?? 'unknown'} key; bundles are signed with Ed25519`,
    );
  }
}

/** Reads every trusted key; the first bad file stops start-up with its reason. */
export async function readTrustedKeys(paths: readonly string[]): Promise<TrustedKey[]> {
  const keys = await Promise.all(paths.map((p) => readTrustedKey(p)));
  const seen = new Set<string>();
  return keys.filter((k) => !seen.has(k.id) && seen.add(k.id));
}

async function readKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new KeyFileError(`cannot read key file ${path}: ${(err as Error).message}`, {
      cause: err,
      hint: '`vigil keygen --out DIR` makes a key pair: private.pem signs bundles, a gateway trusts public.pem',
    });
  }
}
