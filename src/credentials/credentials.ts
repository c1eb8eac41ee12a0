import { createHmac, createSecretKey, randomBytes, timingSafeEqual } from 'node:crypto';
import { isDeviceId } from '../shared/device-id.js';
import { VigilError, type Profile } from '../shared/index.js';
import { storeIo, type ProfileEntry, type ProfileStore, type Sublevel } from '../store/index.js';

/** The one hash scheme: `hmac-sha256$SALT$MAC`, both base64url, MAC = HMAC-SHA-256(key SALT, secret). */
export const CREDENTIAL_SCHEME = 'hmac-sha256';
/** Random bytes in a generated secret: 256 bits, twice the 128 the issue asks for. */
export const SECRET_BYTES = 32;
const SALT_BYTES = 16;
const MAC_BYTES = 32;
/** The profile field that carries a credential hash in an import; it never stays in the profile. */
export const CREDENTIAL_FIELD = 'credential';
/**
 * Words that name a secret. A profile field whose name, lowercased and without `_`, `-` and `.`, is one
 * of them or ends in one, plural or not (`password`, `wifiPassword`, `API_KEY`, `authTokens`), is refused wherever a
 * profile comes from: profiles are read by rules, the HTTP API and the dashboard, so a secret in one
 * would be at rest in clear and shown around.
 */
export const SECRET_FIELD_WORDS = [
  'secret',
  'password',
  'passwd',
  'passphrase',
  'token',
  'apikey',
  'accesskey',
  'privatekey',
  'credential',
] as const;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** What `vigil devices list` shows: never the hash. */
export interface CredentialInfo {
  id: string;
  createdAt: number;
  updatedAt: number;
  /** `cli` made by `vigil devices add|rotate`, `import` arrived with a profile import. */
  source: CredentialSource;
}

export type CredentialSource = 'cli' | 'import';

/** How a presented secret compares with the stored hash. */
export type Verification = 'ok' | 'unknown-device' | 'wrong-secret';

interface StoredCredential {
  hash: string;
  createdAt: number;
  updatedAt: number;
  source: CredentialSource;
  /** The hash before a rotation with an overlap: it still admits new connections until `until`. */
  previous?: { hash: string; until: number };
}

/** A credential operation that cannot be done as asked; `code` tells which. */
export class DeviceCredentialError extends VigilError {
  declare readonly code:
    'VIGIL_DEVICE_ID' | 'VIGIL_DEVICE_EXISTS' | 'VIGIL_DEVICE_UNKNOWN' | 'VIGIL_CREDENTIAL_HASH';
  constructor(code: DeviceCredentialError['code'], message: string) {
    super(code, message);
  }
}

/** A new random secret, base64url: what a device presents as its MQTT password. */
export function generateSecret(): string {
  // Not starting with `-`: some command lines would read it as an option (`mosquitto_pub -P -x…`).
  for (;;) {
    const secret = randomBytes(SECRET_BYTES).toString('base64url');
    if (!secret.startsWith('-')) return secret;
  }
}

/**
 * The stored form of a secret. A random 256-bit secret cannot be guessed, so a slow password hash would
 * only cost CPU (minutes when 10,000 devices reconnect after a restart); the salt keeps equal secrets
 * from having equal hashes, and lets the cloud compute hashes for imports without any gateway key.
 */
export function hashSecret(secret: string, salt: Buffer = randomBytes(SALT_BYTES)): string {
  const mac = macOf(salt, secret);
  return `${CREDENTIAL_SCHEME}$${salt.toString('base64url')}$${mac.toString('base64url')}`;
}

/** Why `text` is not a credential hash, or undefined when it is one. */
export function credentialHashProblem(text: unknown): string | undefined {
  if (typeof text !== 'string') return 'expected a string';
  const parsed = parseHash(text);
  if (parsed === undefined) {
    return `expected ${CREDENTIAL_SCHEME}$SALT$MAC (base64url, a salt of at least ${SALT_BYTES} bytes and a ${MAC_BYTES}-byte MAC), as \`vigil devices hash\` prints`;
  }
  return undefined;
}

/** Compares a presented secret with a stored hash in constant time (for a given hash). */
export function secretMatches(hash: string, secret: Buffer | string): boolean {
  const parsed = parseHash(hash);
  if (parsed === undefined) return false;
  return timingSafeEqual(macOf(parsed.salt, secret), parsed.mac);
}

/**
 * HMAC-SHA-256 of `secret` keyed by `salt`. The key goes in as a key object: given a Buffer, Node 24's `createHmac`
 * spends about four times as long making its own (17–20 µs against 4–5 µs a check), the same MAC either way.
 */
function macOf(salt: Buffer, secret: Buffer | string): Buffer {
  return createHmac('sha256', createSecretKey(salt)).update(secret).digest();
}

function parseHash(text: string): { salt: Buffer; mac: Buffer } | undefined {
  const parts = text.split('$');
  if (parts.length !== 3 || parts[0] !== CREDENTIAL_SCHEME) return undefined;
  const [, saltText = '', macText = ''] = parts;
  if (!BASE64URL.test(saltText) || !BASE64URL.test(macText)) return undefined;
  const salt = Buffer.from(saltText, 'base64url');
  const mac = Buffer.from(macText, 'base64url');
  if (salt.length < SALT_BYTES || mac.length !== MAC_BYTES) return undefined;
  return { salt, mac };
}

/** A `verify` waiting for its read. */
interface Waiting {
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

// Compared against when the device is unknown, so that an unknown id costs what a known one does.
const DECOY_HASH = hashSecret(generateSecret());

/** Credentials kept read ahead at most (about 300 bytes each). */
export const READ_AHEAD_MAX = 20_000;
/** Credentials `readAhead` reads in one `getMany`. */
const READ_AHEAD_CHUNK = 1_000;
/** How long credentials read ahead wait for their device's first CONNECT. */
export const READ_AHEAD_KEEP_MS = 5 * 60_000;

/**
 * What every `CredentialStore` on one sublevel shares (the gateway's, and those the HTTP API makes for an import): the
 * values read ahead, and a count of the writes begun and ended, by which a read-ahead tells that a write overlapped it.
 */
interface ReadAhead {
  readonly values: Map<string, unknown>;
  writes: number;
  forget: NodeJS.Timeout | undefined;
}

const readAheads = new WeakMap<Sublevel, ReadAhead>();

function readAheadOf(level: Sublevel): ReadAhead {
  let shared = readAheads.get(level);
  if (shared === undefined) {
    shared = { values: new Map(), writes: 0, forget: undefined };
    readAheads.set(level, shared);
  }
  return shared;
}

/**
 * Device credentials in the `creds` sublevel of the store (passed in): id → hash, never a clear secret. Every read goes to
 * LevelDB (its block cache keeps it fast), so the gateway, its HTTP API and an import see one truth; only `readAhead`
 * keeps values, each for one `verify`, and every write (all go through a `CredentialStore`) takes what it changes
 * out of them.
 */
export class CredentialStore {
  readonly #level: Sublevel;
  readonly #now: () => number;
  // Writes of one id run one after another, so that `add` cannot race another `add` of the same id.
  #writing: Promise<unknown> = Promise.resolve();
  // The reads `verify` asked for in this turn of the event loop, by id: read together in the next one.
  #verifying: Map<string, Waiting[]> | undefined;
  // Stored values read ahead (`readAhead`), each for one `verify`, shared with the other stores on the sublevel.
  readonly #ahead: ReadAhead;

  constructor(level: Sublevel, now: () => number = Date.now) {
    this.#level = level;
    this.#now = now;
    this.#ahead = readAheadOf(level);
  }

  /** Creates a credential; resolves to the secret, which is stored nowhere. */
  async add(id: string): Promise<string> {
    const secret = generateSecret();
    await this.setHash(id, hashSecret(secret), 'add');
    return secret;
  }

  /**
   * Replaces the secret of a known device. The old one stops working for new connections at once, or after
   * `overlapMs`, so that a fleet can take its new secrets while the old ones still let it reconnect.
   */
  async rotate(id: string, overlapMs = 0): Promise<string> {
    const secret = generateSecret();
    await this.setHash(id, hashSecret(secret), 'rotate', 'cli', overlapMs);
    return secret;
  }

  /**
   * Stores a hash computed elsewhere (the CLI, when the gateway runs; the cloud, with imports). `add`
   * refuses a known id, `rotate` an unknown one, `upsert` neither.
   */
  async setHash(
    id: string,
    hash: string,
    mode: 'add' | 'rotate' | 'upsert',
    source: CredentialSource = 'cli',
    overlapMs = 0,
  ): Promise<void> {
    checkId(id);
    const problem = credentialHashProblem(hash);
    if (problem !== undefined) throw new DeviceCredentialError('VIGIL_CREDENTIAL_HASH', problem);
    await this.#serial(async () => {
      const existing = await this.#read(id);
      if (mode === 'add' && existing !== undefined) {
        throw new DeviceCredentialError(
          'VIGIL_DEVICE_EXISTS',
          `device ${id} already has a credential: \`vigil devices rotate ${id}\` replaces it`,
        );
      }
      if (mode === 'rotate' && existing === undefined) {
        throw new DeviceCredentialError(
          'VIGIL_DEVICE_UNKNOWN',
          `device ${id} has no credential: \`vigil devices add ${id}\` creates one`,
        );
      }
      const now = this.#now();
      const value: StoredCredential = { hash, createdAt: existing?.createdAt ?? now, updatedAt: now, source };
      if (mode === 'rotate' && existing !== undefined && overlapMs > 0) {
        value.previous = { hash: existing.hash, until: now + overlapMs };
      }
      await this.#write([id], () =>
        storeIo(`writing the credential of ${id}`, () => this.#level.put(id, value)),
      );
    });
  }

  /** Stores many imported hashes in one batch; each must already be valid. */
  async putHashes(entries: ReadonlyArray<{ id: string; hash: string }>): Promise<void> {
    if (entries.length === 0) return;
    for (const { id, hash } of entries) {
      checkId(id);
      const problem = credentialHashProblem(hash);
      if (problem !== undefined)
        throw new DeviceCredentialError('VIGIL_CREDENTIAL_HASH', `${id}: ${problem}`);
    }
    await this.#serial(async () => {
      const existing = await storeIo('reading credentials', () =>
        this.#level.getMany(entries.map((e) => e.id)),
      );
      const now = this.#now();
      const ops = entries.map(({ id, hash }, i) => {
        const before = asStored(existing[i]);
        const value: StoredCredential = {
          hash,
          createdAt: before?.createdAt ?? now,
          updatedAt: now,
          source: 'import',
        };
        return { type: 'put' as const, key: id, value };
      });
      await this.#write(
        entries.map((e) => e.id),
        () => storeIo(`writing ${entries.length} credentials`, () => this.#level.batch(ops)),
      );
    });
  }

  /** Whether device `id` has a credential. */
  async has(id: string): Promise<boolean> {
    return isDeviceId(id) && (await this.#read(id)) !== undefined;
  }

  /** Deletes a credential; false when there was none. */
  async remove(id: string): Promise<boolean> {
    return this.#serial(async () => {
      const existing = await this.#read(id);
      if (existing === undefined) return false;
      await this.#write([id], () => storeIo(`deleting the credential of ${id}`, () => this.#level.del(id)));
      return true;
    });
  }

  /** Every credential, by id, without its hash. */
  async list(): Promise<CredentialInfo[]> {
    return storeIo('listing credentials', async () => {
      const out: CredentialInfo[] = [];
      for await (const [id, value] of this.#level.iterator()) {
        const stored = asStored(value);
        if (stored === undefined) continue;
        out.push({ id, createdAt: stored.createdAt, updatedAt: stored.updatedAt, source: stored.source });
      }
      return out;
    });
  }

  /**
   * Reads the credentials of `ids` (the devices likely to reconnect first after a restart) before their CONNECTs come,
   * `READ_AHEAD_CHUNK` to a LevelDB `getMany`, and keeps them for one `verify` each, for `keepMs` at most: a
   * reconnect storm is then answered from memory, not by one trip to LevelDB's thread per CONNECT (libuv accepts one
   * connection a turn, so the CONNECTs of a storm seldom share a read). Keeps `max` in all. Every write to the
   * credentials, by this store or any other on the same sublevel (nothing else writes them), takes what it changes
   * out, so a rotated or removed credential is never answered from what was read before. Resolves to how many it
   * keeps.
   */
  async readAhead(ids: Iterable<string>, max = READ_AHEAD_MAX, keepMs = READ_AHEAD_KEEP_MS): Promise<number> {
    const ahead = this.#ahead;
    const wanted = new Set<string>();
    for (const id of ids) {
      if (ahead.values.size + wanted.size >= max) break;
      if (isDeviceId(id) && !ahead.values.has(id)) wanted.add(id);
    }
    if (wanted.size === 0) return 0;
    clearTimeout(ahead.forget);
    const forget = setTimeout(() => this.forgetReadAhead(), keepMs).unref();
    ahead.forget = forget;
    const all = [...wanted];
    let kept = 0;
    for (let from = 0; from < all.length; from += READ_AHEAD_CHUNK) {
      const chunk = all.slice(from, from + READ_AHEAD_CHUNK);
      const writesBefore = ahead.writes;
      const values = await storeIo(`reading ahead the credentials of ${chunk.length} devices`, () =>
        this.#level.getMany(chunk),
      );
      // A credential written meanwhile may be newer than what was read: this chunk is read again by its `verify`s.
      if (ahead.writes !== writesBefore || ahead.forget !== forget) continue;
      chunk.forEach((id, i) => ahead.values.set(id, values[i]));
      kept += chunk.length;
    }
    return kept;
  }

  /** Credentials read ahead and not yet asked for. */
  get readAheadKept(): number {
    return this.#ahead.values.size;
  }

  /** Drops what `readAhead` kept. */
  forgetReadAhead(): void {
    clearTimeout(this.#ahead.forget);
    this.#ahead.forget = undefined;
    this.#ahead.values.clear();
  }

  /** Whether `secret` is the secret of device `id`. */
  async verify(id: string, secret: Buffer | string): Promise<Verification> {
    const stored = isDeviceId(id) ? asStored(await this.#lookup(id)) : undefined;
    if (stored === undefined) {
      secretMatches(DECOY_HASH, secret);
      return 'unknown-device';
    }
    // Both compared whenever there is a previous hash, so the answer takes the same time either way.
    const current = secretMatches(stored.hash, secret);
    const previous = stored.previous;
    const overlapping =
      previous !== undefined && secretMatches(previous.hash, secret) && this.#now() < previous.until;
    return current || overlapping ? 'ok' : 'wrong-secret';
  }

  /** One id's stored value: what `readAhead` kept for it (taken, it answers once), else read. */
  #lookup(id: string): unknown {
    const values = this.#ahead.values;
    if (!values.has(id)) return this.#readTogether(id);
    const value = values.get(id);
    values.delete(id);
    return value;
  }

  /**
   * Writes the credentials of `ids`: what was read ahead for them is dropped as the write begins and again once it
   * ended, and the count of writes moves both times, so a read-ahead that overlapped the write does not keep what it
   * read (it may be older than the write).
   */
  async #write<T>(ids: readonly string[], write: () => Promise<T>): Promise<T> {
    this.#wrote(ids);
    try {
      return await write();
    } finally {
      this.#wrote(ids);
    }
  }

  #wrote(ids: readonly string[]): void {
    const ahead = this.#ahead;
    ahead.writes++;
    for (const id of ids) ahead.values.delete(id);
  }

  /**
   * One id's credential, read with the others asked for in the same turn of the event loop in one LevelDB
   * `getMany`: a reconnect storm's CONNECTs, read from the sockets in one go, cost one trip to LevelDB's thread
   * rather than one each (a `get` costs about 0.1 ms of the main thread).
   */
  #readTogether(id: string): Promise<unknown> {
    let batch = this.#verifying;
    if (batch === undefined) {
      const started = new Map<string, Waiting[]>();
      this.#verifying = batch = started;
      setImmediate(() => {
        this.#verifying = undefined;
        void this.#readBatch(started);
      });
    }
    return new Promise((resolve, reject) => {
      const waiting = { resolve, reject };
      const same = batch.get(id);
      if (same === undefined) batch.set(id, [waiting]);
      else same.push(waiting);
    });
  }

  async #readBatch(batch: Map<string, Waiting[]>): Promise<void> {
    const ids = [...batch.keys()];
    try {
      const values = await storeIo(`reading the credentials of ${ids.length} devices`, () =>
        this.#level.getMany(ids),
      );
      ids.forEach((id, i) => batch.get(id)?.forEach((w) => w.resolve(values[i])));
    } catch (err) {
      for (const waiting of batch.values()) for (const w of waiting) w.reject(err);
    }
  }

  async #read(id: string): Promise<StoredCredential | undefined> {
    const value = await storeIo(`reading the credential of ${id}`, () => this.#level.get(id));
    return asStored(value);
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#writing.then(work, work);
    this.#writing = run.catch(() => undefined);
    return run;
  }
}

function checkId(id: string): void {
  if (!isDeviceId(id)) {
    throw new DeviceCredentialError(
      'VIGIL_DEVICE_ID',
      `${JSON.stringify(id)} is not a device id: 1-128 letters, digits and _ . : @ -, starting with a letter or digit`,
    );
  }
}

function asStored(value: unknown): StoredCredential | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Partial<StoredCredential>;
  if (typeof v.hash !== 'string') return undefined;
  return {
    hash: v.hash,
    createdAt: typeof v.createdAt === 'number' ? v.createdAt : 0,
    updatedAt: typeof v.updatedAt === 'number' ? v.updatedAt : 0,
    source: v.source === 'import' ? 'import' : 'cli',
    ...(isPrevious(v.previous) ? { previous: v.previous } : {}),
  };
}

function isPrevious(value: unknown): value is { hash: string; until: number } {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { hash?: unknown; until?: unknown };
  return typeof v.hash === 'string' && typeof v.until === 'number';
}

/** A field met while walking a profile; its path is spelled out through `parent` only when needed. */
interface WalkedField {
  key: string;
  value: unknown;
  parent: WalkedField | undefined;
}

/**
 * The first field of `profile`, at any depth, named like a secret (SECRET_FIELD_WORDS), as a path such
 * as `wifi.password`; top-level fields named in `except` are not looked at.
 */
export function secretFieldOf(profile: Profile, except: readonly string[] = []): string | undefined {
  // Iterative, and the path is spelled out only for the field found: a profile nested thousands of
  // levels deep must neither overflow the stack nor build thousands of long paths.
  const pending: WalkedField[] = [];
  for (const [key, value] of Object.entries(profile)) {
    if (!except.includes(key)) pending.push({ key, value, parent: undefined });
  }
  for (let field = pending.pop(); field !== undefined; field = pending.pop()) {
    if (namesSecret(field.key)) {
      const path: string[] = [];
      for (let f: WalkedField | undefined = field; f !== undefined; f = f.parent) path.push(f.key);
      return path.reverse().join('.');
    }
    if (typeof field.value !== 'object' || field.value === null) continue;
    for (const [key, value] of Object.entries(field.value)) pending.push({ key, value, parent: field });
  }
  return undefined;
}

/**
 * `profile` without its fields named like a secret, at any depth: for what shows a profile, in case one
 * was stored before such fields were refused. The profile itself when it has none.
 */
export function withoutSecretFields(profile: Profile): Profile {
  if (secretFieldOf(profile) === undefined) return profile;
  return JSON.parse(JSON.stringify(profile), (key, value: unknown) =>
    key !== '' && namesSecret(key) ? undefined : value,
  ) as Profile;
}

function namesSecret(name: string): boolean {
  const plain = name.toLowerCase().replace(/[-_.]/g, '');
  return SECRET_FIELD_WORDS.some((word) => plain.endsWith(word) || plain.endsWith(`${word}s`));
}

/**
 * Why a profile cannot be stored because it holds a secret, or undefined: the one check for every way a
 * profile arrives (imports, cloud batches). `except`: top-level fields the caller takes out itself.
 */
export function profileSecretProblem(profile: Profile, except: readonly string[] = []): string | undefined {
  const field = secretFieldOf(profile, except);
  if (field === undefined) return undefined;
  return `field "${field}" is named like a secret (${SECRET_FIELD_WORDS.join(', ')}): a profile never holds a clear secret; a device's credential goes in "${CREDENTIAL_FIELD}" as the hash \`vigil devices hash\` prints, with \`vigil profiles import\``;
}

/**
 * Why an imported profile cannot be taken as it is, or undefined: a `credential` must be a hash (and
 * the id a device id), and a field that looks like a clear secret is refused rather than stored.
 */
export function importedCredentialProblem(id: string, profile: Profile): string | undefined {
  const secret = profileSecretProblem(profile, [CREDENTIAL_FIELD]);
  if (secret !== undefined) return secret;
  if (!(CREDENTIAL_FIELD in profile)) return undefined;
  if (!isDeviceId(id)) return `"id" ${JSON.stringify(id)} cannot have a credential: it is not a device id`;
  const problem = credentialHashProblem(profile[CREDENTIAL_FIELD]);
  return problem === undefined ? undefined : `"${CREDENTIAL_FIELD}": ${problem}`;
}

/**
 * What a profile import writes to: the profiles, with each `credential` taken out and stored in the
 * credentials first (a profile is never written without the credential that came with it); and the check
 * that refuses a line whose credential is not a hash, or that carries a clear secret.
 */
export function credentialImportTarget(store: {
  profiles: Pick<ProfileStore, 'putMany'>;
  credentials: Pick<CredentialStore, 'putHashes'>;
}): {
  profiles: Pick<ProfileStore, 'putMany'>;
  checkProfile: (id: string, profile: Profile) => string | undefined;
} {
  return {
    checkProfile: importedCredentialProblem,
    profiles: {
      async putMany(batch: readonly ProfileEntry[]): Promise<void> {
        const hashes: Array<{ id: string; hash: string }> = [];
        const profiles = batch.map((entry) => {
          if (!(CREDENTIAL_FIELD in entry.profile)) return entry;
          const { [CREDENTIAL_FIELD]: hash, ...rest } = entry.profile;
          hashes.push({ id: entry.id, hash: String(hash) });
          return { id: entry.id, profile: rest };
        });
        await store.credentials.putHashes(hashes);
        await store.profiles.putMany(profiles);
      },
    },
  };
}
