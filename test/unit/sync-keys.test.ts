import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import {
  createBundle,
  KeyFileError,
  openBundle,
  readSigningKey,
  readTrustedKey,
  readTrustedKeys,
  writeKeyPair,
} from '../../src/sync/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('signing keys', () => {
  test('keygen writes a pair whose private half signs what the public half verifies', async () => {
    const pair = await writeKeyPair(join(dir, 'keys'));
    expect((await stat(pair.privatePath)).mode & 0o777).toBe(0o600);
    expect(await readFile(pair.publicPath, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const signer = await readSigningKey(pair.privatePath);
    const trusted = await readTrustedKey(pair.publicPath);
    expect(signer.id).toBe(pair.id);
    expect(trusted.id).toBe(pair.id);
    const bundle = createBundle({ version: 1, createdAt: new Date(0).toISOString(), files: [] }, signer);
    expect(openBundle(bundle, [trusted])).toMatchObject({ ok: true, keyId: pair.id });
  });

  test('keygen never replaces an existing key pair', async () => {
    const first = await writeKeyPair(dir);
    await expect(writeKeyPair(dir)).rejects.toThrow(/already holds a key pair/);
    expect((await readTrustedKey(first.publicPath)).id).toBe(first.id);
  });

  test('a gateway refuses a private key, a key of another type, and a missing file as trusted keys', async () => {
    const pair = await writeKeyPair(dir);
    await expect(readTrustedKey(pair.privatePath)).rejects.toThrow(
      /private key; give the gateway the public key/,
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    await writeFile(join(dir, 'rsa.pem'), rsa);
    await expect(readTrustedKey(join(dir, 'rsa.pem'))).rejects.toThrow(
      /rsa key; bundles are signed with Ed25519/,
    );
    await expect(readTrustedKey(join(dir, 'none.pem'))).rejects.toBeInstanceOf(KeyFileError);
    await writeFile(join(dir, 'junk.pem'), 'not a key');
    await expect(readSigningKey(join(dir, 'junk.pem'))).rejects.toThrow(/not a private key in PEM/);
  });

  test('the same key given twice is trusted once', async () => {
    const pair = await writeKeyPair(dir);
    const keys = await readTrustedKeys([pair.publicPath, pair.publicPath]);
    expect(keys.map((k) => k.id)).toEqual([pair.id]);
  });
});
