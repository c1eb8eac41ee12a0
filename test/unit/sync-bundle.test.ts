import { createPrivateKey, generateKeyPairSync, verify } from 'node:crypto';
import { Encoder, Tag } from 'cbor-x';
import { describe, expect, test } from 'vitest';
import { encodeCbor } from '../../src/store/index.js';
import { signSign1 } from '../../src/sync/cose-sign1.js';
import {
  createBundle,
  keyId,
  MAX_BUNDLE_BYTES,
  openBundle,
  type BundleContent,
  type SigningKey,
  type TrustedKey,
} from '../../src/sync/index.js';

function keyPair(): { signer: SigningKey; trusted: TrustedKey } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const id = keyId(publicKey);
  return { signer: { id, key: privateKey }, trusted: { id, key: publicKey, source: 'test' } };
}

const content: BundleContent = {
  version: 3,
  createdAt: '2026-11-26T10:00:00.000Z',
  files: [
    { path: 'overheat.yaml', text: 'id: overheat\n' },
    { path: 'templates/threshold.yaml', text: 'template: threshold\n' },
  ],
};

describe('signed rule bundles', () => {
  test('a bundle opens with the key that signed it and carries its content unchanged', () => {
    const { signer, trusted } = keyPair();
    const opened = openBundle(createBundle(content, signer), [keyPair().trusted, trusted]);
    expect(opened).toMatchObject({ ok: true, keyId: signer.id, content });
  });

  test('a bundle signed by a key the gateway does not trust is refused as untrusted-key', () => {
    const { signer } = keyPair();
    const bundle = createBundle(content, signer);
    expect(openBundle(bundle, [keyPair().trusted])).toMatchObject({
      ok: false,
      reason: 'untrusted-key',
      detail: expect.stringContaining(signer.id) as string,
    });
    expect(openBundle(bundle, [])).toMatchObject({ ok: false, reason: 'untrusted-key' });
  });

  test('a flipped bit anywhere in a bundle gets it refused; in the payload, as bad-signature', () => {
    const { signer, trusted } = keyPair();
    const bundle = createBundle(content, signer);
    const reasons = new Set<string>();
    for (let i = 0; i < bundle.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const altered = Buffer.from(bundle);
        altered[i] = (altered[i] as number) ^ bit;
        const opened = openBundle(altered, [trusted]);
        expect(opened.ok, `byte ${i} ^ ${bit}`).toBe(false);
        if (!opened.ok) reasons.add(opened.reason);
      }
    }
    // The text of the first rule file lies inside the signed payload.
    const at = bundle.indexOf('id: overheat');
    const altered = Buffer.from(bundle);
    altered[at] = 'I'.charCodeAt(0);
    expect(openBundle(altered, [trusted])).toMatchObject({ ok: false, reason: 'bad-signature' });
    expect([...reasons].sort()).toEqual(['bad-signature', 'malformed', 'untrusted-key']);
  });

  test('truncated, padded and oversized bundles are malformed', () => {
    const { signer, trusted } = keyPair();
    const bundle = createBundle(content, signer);
    expect(openBundle(bundle.subarray(0, bundle.length - 1), [trusted])).toMatchObject({
      reason: 'malformed',
    });
    expect(openBundle(Buffer.concat([bundle, Buffer.from([0])]), [trusted])).toMatchObject({
      reason: 'malformed',
    });
    expect(openBundle(Buffer.alloc(MAX_BUNDLE_BYTES + 1), [trusted])).toMatchObject({ reason: 'malformed' });
    expect(openBundle(Buffer.from('{"version": 9}'), [trusted])).toMatchObject({ reason: 'malformed' });
  });

  test('a well-signed payload without the bundle layout is refused as invalid-content', () => {
    const { signer, trusted } = keyPair();
    const sign = (payload: unknown) =>
      signSign1(encodeCbor(payload), signer.key, Buffer.from(signer.id, 'hex'));
    const good = { format: 1, ...content };
    for (const [payload, detail] of [
      [{ ...good, format: 2 }, 'unknown bundle format'],
      [{ ...good, version: 0 }, 'version must be'],
      [{ ...good, version: 1.5 }, 'version must be'],
      [{ ...good, createdAt: 'yesterday' }, 'createdAt'],
      [{ ...good, files: [{ path: '../etc/passwd.yaml', text: '' }] }, 'files[0].path'],
      [{ ...good, files: [{ path: 'a.yaml', text: 1 }] }, 'files[0].text'],
      [{ ...good, files: [...good.files, good.files[0]] }, 'appears twice'],
      [[1, 2, 3], 'not a map'],
    ] as const) {
      expect(openBundle(sign(payload), [trusted])).toMatchObject({
        ok: false,
        reason: 'invalid-content',
        detail: expect.stringContaining(detail) as string,
      });
    }
  });

  test('the envelope is a standard COSE_Sign1 (RFC 9052) that a general CBOR library reads and checks', () => {
    const { signer, trusted } = keyPair();
    const bundle = createBundle(content, signer);
    const cbor = new Encoder({ useRecords: false, mapsAsObjects: false });
    const tag = cbor.decode(bundle) as Tag;
    expect(tag).toBeInstanceOf(Tag);
    expect(tag.tag).toBe(18);
    const [prot, unprotected, payload, signature] = tag.value as [
      Buffer,
      Map<number, Buffer>,
      Buffer,
      Buffer,
    ];
    const header = cbor.decode(prot) as Map<number, unknown>;
    expect(header.get(1)).toBe(-8);
    expect((header.get(4) as Buffer).toString('hex')).toBe(signer.id);
    expect(unprotected.size).toBe(0);
    const sigStructure = cbor.encode(['Signature1', prot, Buffer.alloc(0), payload]);
    expect(verify(null, sigStructure, trusted.key, signature)).toBe(true);
    expect(cbor.decode(payload)).toEqual(
      new Map<string, unknown>([
        ['format', 1],
        ['version', 3],
        ['createdAt', content.createdAt],
        [
          'files',
          content.files.map(
            (f) =>
              new Map([
                ['path', f.path],
                ['text', f.text],
              ]),
          ),
        ],
      ]),
    );
  });

  test('the key id of a private key is that of its public half', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
    expect(keyId(createPrivateKey(pem))).toBe(keyId(publicKey));
    expect(keyId(publicKey)).toMatch(/^[0-9a-f]{16}$/);
  });
});
