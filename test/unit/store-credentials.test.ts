import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { authenticateConnect, type ConnectAttempt } from '../../src/broker/index.js';
import {
  CredentialStore,
  credentialImportTarget,
  DeviceCredentialError,
  generateSecret,
  hashSecret,
  secretFieldOf,
  secretMatches,
} from '../../src/credentials/index.js';
import { importProfiles, openStore, type Store } from '../../src/store/index.js';

let dir: string;
let store: Store;
let creds: CredentialStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-creds-'));
  store = await openStore(dir);
  creds = new CredentialStore(store.sublevels.creds);
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (err: unknown) => (err instanceof DeviceCredentialError ? err.code : String(err)),
  );

describe('secrets and their hashes', () => {
  test('a secret is 256 random bits, base64url, never starting with a dash', () => {
    const secrets = new Set(Array.from({ length: 200 }, generateSecret));
    expect(secrets.size).toBe(200);
    for (const s of secrets) {
      expect(s).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{42}$/);
      expect(Buffer.from(s, 'base64url')).toHaveLength(32);
    }
  });

  test('the hash is salted: one secret hashes differently twice, and both verify', () => {
    const secret = generateSecret();
    const a = hashSecret(secret);
    const b = hashSecret(secret);
    expect(a).not.toBe(b);
    expect(a).toMatch(/^hmac-sha256\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(secretMatches(a, secret)).toBe(true);
    expect(secretMatches(b, Buffer.from(secret))).toBe(true);
    expect(secretMatches(a, `${secret}x`)).toBe(false);
    expect(secretMatches('not a hash', secret)).toBe(false);
  });

  test('the MAC is HMAC-SHA-256 keyed by the salt, as stored hashes were made (RFC 4231 vectors)', () => {
    const b64url = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');
    // Test case 2: key "Jefe".
    const mac2 = b64url('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
    expect(hashSecret('what do ya want for nothing?', Buffer.from('Jefe'))).toBe(
      `hmac-sha256$SmVmZQ$${mac2}`,
    );
    // Test case 3: a 20-byte key of 0xaa, 50 bytes of 0xdd.
    const mac3 = b64url('773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe');
    const hash = `hmac-sha256$${b64url('aa'.repeat(20))}$${mac3}`;
    expect(secretMatches(hash, Buffer.alloc(50, 0xdd))).toBe(true);
    expect(secretMatches(hash, Buffer.alloc(50, 0xdc))).toBe(false);
  });
});

describe('CredentialStore', () => {
  test('stores only a hash: the secret appears nowhere in the database', async () => {
    const secret = await creds.add('dev-1');
    let entries = 0;
    for await (const [key, value] of store.db.iterator({ keyEncoding: 'utf8', valueEncoding: 'buffer' })) {
      entries++;
      expect(`${key}${Buffer.from(value as Uint8Array).toString('latin1')}`).not.toContain(secret);
    }
    expect(entries).toBeGreaterThan(0);
    expect(await creds.verify('dev-1', Buffer.from(secret))).toBe('ok');
  });

  test('add refuses a known id, rotate an unknown one, and both refuse ids that cannot be topic levels', async () => {
    await creds.add('dev-1');
    expect(await codeOf(creds.add('dev-1'))).toBe('VIGIL_DEVICE_EXISTS');
    expect(await codeOf(creds.rotate('dev-2'))).toBe('VIGIL_DEVICE_UNKNOWN');
    for (const id of ['', 'a/b', 'dev+', 'dev#', '$SYS', ' dev', '-dev', 'x'.repeat(129)]) {
      expect(await codeOf(creds.add(id))).toBe('VIGIL_DEVICE_ID');
    }
  });

  test('rotate with an overlap: the old secret still works until the overlap ends, the new one at once', async () => {
    let now = 1_000_000;
    const clocked = new CredentialStore(store.sublevels.creds, () => now);
    const first = await clocked.add('dev-1');
    const second = await clocked.rotate('dev-1', 60_000);
    expect(await clocked.verify('dev-1', second)).toBe('ok');
    expect(await clocked.verify('dev-1', first)).toBe('ok');
    expect(await clocked.verify('dev-1', 'not-the-secret')).toBe('wrong-secret');
    now += 59_999;
    expect(await clocked.verify('dev-1', first)).toBe('ok');
    now += 1;
    expect(await clocked.verify('dev-1', first)).toBe('wrong-secret');
    expect(await clocked.verify('dev-1', second)).toBe('ok');
    // A rotation without an overlap ends the previous secret at once, the overlapping one included.
    const third = await clocked.rotate('dev-1', 60_000);
    const fourth = await clocked.rotate('dev-1');
    expect(await clocked.verify('dev-1', third)).toBe('wrong-secret');
    expect(await clocked.verify('dev-1', second)).toBe('wrong-secret');
    expect(await clocked.verify('dev-1', fourth)).toBe('ok');
  });

  test('rotate makes the old secret stop working and the new one work', async () => {
    const first = await creds.add('dev-1');
    const second = await creds.rotate('dev-1');
    expect(await creds.verify('dev-1', Buffer.from(first))).toBe('wrong-secret');
    expect(await creds.verify('dev-1', Buffer.from(second))).toBe('ok');
  });

  test('remove forgets the device; list shows ids and dates, never hashes', async () => {
    await creds.add('dev-b');
    await creds.add('dev-a');
    const listed = await creds.list();
    expect(listed.map((c) => c.id)).toEqual(['dev-a', 'dev-b']);
    expect(JSON.stringify(listed)).not.toContain('hmac');
    expect(await creds.remove('dev-a')).toBe(true);
    expect(await creds.remove('dev-a')).toBe(false);
    expect(await creds.verify('dev-a', Buffer.from('anything'))).toBe('unknown-device');
  });

  test('verifications asked for together are each answered for their own device and secret', async () => {
    const secrets = await Promise.all(Array.from({ length: 300 }, (_, i) => creds.add(`dev-${i}`)));
    const asked = secrets.flatMap((secret, i) => [
      creds.verify(`dev-${i}`, secret),
      creds.verify(`dev-${i}`, secrets[(i + 1) % secrets.length] as string),
      creds.verify(`dev-${i}`, secret),
    ]);
    const answers = await Promise.all([...asked, creds.verify('ghost', 'x'), creds.verify('../bad', 'x')]);
    expect(answers.slice(0, -2)).toEqual(secrets.flatMap(() => ['ok', 'wrong-secret', 'ok']));
    expect(answers.slice(-2)).toEqual(['unknown-device', 'unknown-device']);
    // Read again in a later turn, a rotated secret answers as rotated.
    const rotated = await creds.rotate('dev-0');
    await expect(creds.verify('dev-0', rotated)).resolves.toBe('ok');
    await expect(creds.verify('dev-0', secrets[0] as string)).resolves.toBe('wrong-secret');
  });

  test('concurrent adds of one id: exactly one wins', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => codeOf(creds.add('dev-1'))));
    expect(results.filter((r) => r === 'resolved')).toHaveLength(1);
    expect(results.filter((r) => r === 'VIGIL_DEVICE_EXISTS')).toHaveLength(4);
  });
});

describe('credentials read ahead of a reconnect storm', () => {
  test('each one read ahead answers one verify as a read would, then the next verify reads it again', async () => {
    const a = await creds.add('dev-a');
    const b = await creds.add('dev-b');
    expect(await creds.readAhead(['dev-a', 'dev-b', 'ghost', 'dev-a', '../bad'])).toBe(3);
    expect(creds.readAheadKept).toBe(3);
    expect(await creds.verify('dev-a', a)).toBe('ok');
    expect(await creds.verify('dev-b', a)).toBe('wrong-secret');
    expect(await creds.verify('ghost', a)).toBe('unknown-device');
    expect(creds.readAheadKept).toBe(0);
    expect(await creds.verify('dev-b', b)).toBe('ok');
    expect(await creds.verify('ghost', a)).toBe('unknown-device');
  });

  test('a credential rotated, removed or imported after the read-ahead is never answered from it, whichever store wrote it', async () => {
    const old = await Promise.all(['dev-1', 'dev-2', 'dev-3', 'dev-4'].map((id) => creds.add(id)));
    expect(await creds.readAhead(['dev-1', 'dev-2', 'dev-3', 'dev-4', 'dev-5'])).toBe(5);
    // Another store on the same credentials, as the HTTP API's profile import uses.
    const other = new CredentialStore(store.sublevels.creds);
    const rotated = await other.rotate('dev-1');
    expect(await other.remove('dev-2')).toBe(true);
    const imported = generateSecret();
    await other.putHashes([{ id: 'dev-3', hash: hashSecret(imported) }]);
    const added = await other.add('dev-5');
    const ownRotation = await creds.rotate('dev-4');
    expect(await creds.verify('dev-1', old[0] as string)).toBe('wrong-secret');
    expect(await creds.verify('dev-2', old[1] as string)).toBe('unknown-device');
    expect(await creds.verify('dev-3', old[2] as string)).toBe('wrong-secret');
    expect(await creds.verify('dev-4', old[3] as string)).toBe('wrong-secret');
    expect(await creds.verify('dev-5', added)).toBe('ok');
    expect(await creds.verify('dev-1', rotated)).toBe('ok');
    expect(await creds.verify('dev-3', imported)).toBe('ok');
    expect(await creds.verify('dev-4', ownRotation)).toBe('ok');
  });

  test('a credential removed or rotated while the read-ahead reads is not answered from what it read', async () => {
    const secrets = await Promise.all(['dev-1', 'dev-2'].map((id) => creds.add(id)));
    const other = new CredentialStore(store.sublevels.creds);
    // Begun before the read-ahead, ended whenever LevelDB's threads take them.
    const removing = other.remove('dev-1');
    const rotating = other.rotate('dev-2');
    await Promise.all([creds.readAhead(['dev-1', 'dev-2']), removing, rotating]);
    expect(await creds.verify('dev-1', secrets[0] as string)).toBe('unknown-device');
    expect(await creds.verify('dev-2', secrets[1] as string)).toBe('wrong-secret');
    expect(await creds.verify('dev-2', await rotating)).toBe('ok');
  });

  test('keeps at most the bound it is given, and nothing once its time is up or it is forgotten', async () => {
    const secrets = await Promise.all(['dev-1', 'dev-2', 'dev-3'].map((id) => creds.add(id)));
    expect(await creds.readAhead(['dev-1', 'dev-2', 'dev-3'], 2)).toBe(2);
    expect(creds.readAheadKept).toBe(2);
    creds.forgetReadAhead();
    expect(creds.readAheadKept).toBe(0);
    await creds.readAhead(['dev-1', 'dev-2', 'dev-3'], 10, 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(creds.readAheadKept).toBe(0);
    expect(await creds.verify('dev-3', secrets[2] as string)).toBe('ok');
  });
});

describe('credentials in a profile import', () => {
  const importLines = (lines: unknown[]) =>
    importProfiles(
      credentialImportTarget({ profiles: store.profiles, credentials: creds }),
      Readable.from([Buffer.from(lines.map((l) => JSON.stringify(l)).join('\n'))]),
    );

  test('a hash goes to the credentials and never into the profile', async () => {
    const secret = generateSecret();
    const summary = await importLines([{ id: 'dev-1', site: 'north', credential: hashSecret(secret) }]);
    expect(summary).toMatchObject({ imported: 1, rejected: 0 });
    expect(await store.profiles.get('dev-1')).toEqual({ id: 'dev-1', site: 'north' });
    expect(await creds.verify('dev-1', Buffer.from(secret))).toBe('ok');
    expect((await creds.list())[0]).toMatchObject({ id: 'dev-1', source: 'import' });
  });

  test('a clear secret, a malformed hash, or a credential for an id that is not a device id is refused by line', async () => {
    const summary = await importLines([
      { id: 'dev-1', secret: 'hunter2hunter2hunter2' },
      { id: 'dev-2', password: 'hunter2' },
      { id: 'dev-3', credential: 'hunter2' },
      { id: 'dev-4', credential: 'hmac-sha256$c2FsdA$bWFj' },
      { id: 'a/b', credential: hashSecret(generateSecret()) },
      { id: 'dev-5', site: 'south' },
    ]);
    expect(summary).toMatchObject({ imported: 1, rejected: 5 });
    expect(summary.errors.map((e) => e.line)).toEqual([1, 2, 3, 4, 5]);
    expect(summary.errors[0]?.message).toContain('clear secret');
    expect(await creds.list()).toEqual([]);
    expect(await store.profiles.get('dev-1')).toBeUndefined();
  });

  test('a field named like a secret, in any case and at any depth, is refused with its name', async () => {
    const summary = await importLines([
      { id: 'dev-1', apiKey: 'k' },
      { id: 'dev-2', modem: { AUTH_TOKEN: 't' } },
      { id: 'dev-3', sensors: [{ model: 'x', privateKeys: ['-----BEGIN'] }] },
      { id: 'dev-4', site: 'north', tokenizer: 'words', credential: hashSecret(generateSecret()) },
    ]);
    expect(summary).toMatchObject({ imported: 1, rejected: 3 });
    expect(summary.errors.map((e) => [e.line, /field "([^"]+)"/.exec(e.message)?.[1]])).toEqual([
      [1, 'apiKey'],
      [2, 'modem.AUTH_TOKEN'],
      [3, 'sensors.0.privateKeys'],
    ]);
    expect(await store.profiles.get('dev-1')).toBeUndefined();
    expect(await store.profiles.get('dev-4')).toEqual({ id: 'dev-4', site: 'north', tokenizer: 'words' });
  });

  test('the secret check walks a deeply nested profile without overflowing the stack', () => {
    let deep: Record<string, unknown> = { password: 'x' };
    for (let i = 0; i < 100_000; i++) deep = { d: deep };
    expect(secretFieldOf({ id: 'dev-1', deep })?.endsWith('.d.password')).toBe(true);
    expect(secretFieldOf({ id: 'dev-1', credential: 'h' }, ['credential'])).toBeUndefined();
  });

  test('an imported hash replaces the secret of a device that had one', async () => {
    const old = await creds.add('dev-1');
    const next = generateSecret();
    await importLines([{ id: 'dev-1', credential: hashSecret(next) }]);
    expect(await creds.verify('dev-1', Buffer.from(old))).toBe('wrong-secret');
    expect(await creds.verify('dev-1', Buffer.from(next))).toBe('ok');
  });
});

describe('the CONNECT decision', () => {
  const attempt = (over: Partial<ConnectAttempt>): ConnectAttempt => ({
    clientId: 'dev-1',
    username: 'dev-1',
    password: undefined,
    certificateName: undefined,
    certificateRequired: false,
    ...over,
  });
  const decide = (over: Partial<ConnectAttempt>, allowAnonymous = false) =>
    authenticateConnect(attempt(over), { allowAnonymous, credentials: creds });

  test('user name = client id = device id with its secret is a device; anything else is refused with a code', async () => {
    const secret = Buffer.from(await creds.add('dev-1'));
    expect(await decide({ password: secret })).toMatchObject({
      ok: true,
      identity: { kind: 'device', deviceId: 'dev-1' },
    });
    const cases: Array<[Partial<ConnectAttempt>, string, number]> = [
      [{ username: undefined }, 'no-credentials', 5],
      [{ password: undefined }, 'no-credentials', 4],
      [{ password: Buffer.from('wrong') }, 'wrong-secret', 4],
      [{ clientId: 'dev-2', username: 'dev-2', password: secret }, 'unknown-device', 4],
      [{ clientId: 'other', password: secret }, 'client-id-mismatch', 2],
      [{ clientId: 'a/b', username: 'a/b', password: secret }, 'invalid-device-id', 4],
    ];
    for (const [over, refusal, returnCode] of cases) {
      expect(await decide(over), JSON.stringify(over)).toMatchObject({ ok: false, refusal, returnCode });
    }
  });

  test('anonymous only when allowed, and credentials given are still checked then', async () => {
    expect(await decide({ username: undefined }, true)).toMatchObject({
      ok: true,
      identity: { kind: 'anonymous' },
    });
    expect(await decide({ password: Buffer.from('wrong') }, true)).toMatchObject({
      ok: false,
      refusal: 'unknown-device',
    });
  });

  test("on a listener with a CA the certificate's common name is the device id", async () => {
    const viaCert = (over: Partial<ConnectAttempt>) =>
      decide({
        certificateRequired: true,
        certificateName: 'dev-7',
        clientId: 'dev-7',
        username: undefined,
        ...over,
      });
    expect(await viaCert({})).toMatchObject({ ok: true, identity: { kind: 'device', deviceId: 'dev-7' } });
    expect(await viaCert({ username: 'dev-7' })).toMatchObject({ ok: true });
    expect(await viaCert({ clientId: 'dev-8' })).toMatchObject({ ok: false, refusal: 'client-id-mismatch' });
    expect(await viaCert({ username: 'dev-8' })).toMatchObject({ ok: false, refusal: 'client-id-mismatch' });
    expect(await viaCert({ certificateName: undefined })).toMatchObject({
      ok: false,
      refusal: 'certificate',
    });
    expect(await viaCert({ certificateName: 'Dev 7', clientId: 'Dev 7' })).toMatchObject({
      ok: false,
      refusal: 'invalid-device-id',
    });
  });
});
