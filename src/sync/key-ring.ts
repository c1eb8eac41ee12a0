import type { Logger } from 'pino';
import type { Sublevel } from '../store/index.js';
import { openKeyList, trustedKeysOf, type KeyListDefect } from './key-list.js';
import type { TrustedKey } from './keys.js';

/** Where the key list in force is kept, in the `state` sublevel. */
export const KEY_LIST_KEY = 'sync/keys';

/** Why a trusted-key list was refused: its defects, an old sequence, a revoked key, or a failed write. */
export type KeyListRejectReason = KeyListDefect | 'stale-seq' | 'revoked-key' | 'store-failed';

/** What the gateway did with a key list: published, retained, on `vigil/{gw}/keys/status`. */
export interface KeyListStatus {
  gateway: string;
  /** The list's sequence; null when refused before it could be trusted. */
  seq: number | null;
  status: 'applied' | 'rejected';
  reason?: KeyListRejectReason;
  detail: string;
  time: string;
  hash: string;
  /** Ids of the keys trusted after this outcome. */
  trusted: string[];
  /** Ids of every key revoked on this gateway. */
  revoked: string[];
}

/** The key list in force as LevelDB keeps it: already verified, so it is read back without its signer. */
interface StoredKeyList {
  seq: number;
  hash: string;
  keys: string[];
  revoked: string[];
  appliedAt: number;
}

/**
 * The keys the gateway trusts: those configured (`sync.trustedKeys`) until a signed key list replaces them, then
 * the latest list applied, kept in LevelDB so that it outlives a restart. A list must be signed by a key trusted
 * now and carry a higher sequence than the one in force; every key it revokes stays revoked for good, even if
 * the configuration still names it.
 */
export class KeyRing {
  private trusted: readonly TrustedKey[];
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly state: Sublevel,
    private stored: StoredKeyList | undefined,
    configured: readonly TrustedKey[],
    private readonly logger: Pick<Logger, 'info' | 'warn'>,
  ) {
    const revoked = new Set(stored?.revoked ?? []);
    const keys = stored === undefined ? configured : trustedKeysOf(stored.keys, `key list ${stored.seq}`);
    for (const key of configured) {
      if (revoked.has(key.id))
        logger.warn(
          { key: key.id, file: key.source },
          'a configured trusted key is revoked; it is not trusted',
        );
      else if (stored !== undefined && !keys.some((k) => k.id === key.id)) {
        logger.info(
          { key: key.id, seq: stored.seq },
          'a configured trusted key is not on the key list in force; it is not trusted',
        );
      }
    }
    this.trusted = keys.filter((k) => !revoked.has(k.id));
  }

  static async open(
    state: Sublevel,
    configured: readonly TrustedKey[],
    logger: Pick<Logger, 'info' | 'warn'>,
  ): Promise<KeyRing> {
    const value = await state.get(KEY_LIST_KEY);
    return new KeyRing(state, isStoredKeyList(value) ? value : undefined, configured, logger);
  }

  /** The keys trusted now. */
  get keys(): readonly TrustedKey[] {
    return this.trusted;
  }

  /** The sequence of the list in force; 0 while the configured keys are. */
  get seq(): number {
    return this.stored?.seq ?? 0;
  }

  get revoked(): readonly string[] {
    return this.stored?.revoked ?? [];
  }

  /** Checks and applies a key list, one at a time; undefined when it is the list in force met again. */
  apply(bytes: Uint8Array, gateway: string, now: number): Promise<KeyListStatus | undefined> {
    const next = this.queue.then(() => this.tryList(Buffer.from(bytes), gateway, now));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async tryList(bytes: Buffer, gateway: string, now: number): Promise<KeyListStatus | undefined> {
    const opened = openKeyList(bytes, this.trusted);
    const outcome = (
      seq: number | null,
      status: KeyListStatus['status'],
      detail: string,
      reason?: KeyListRejectReason,
    ): KeyListStatus => ({
      gateway,
      seq,
      status,
      ...(reason !== undefined ? { reason } : {}),
      detail,
      time: new Date(now).toISOString(),
      hash: opened.hash,
      trusted: this.trusted.map((k) => k.id),
      revoked: [...this.revoked],
    });
    if (!opened.ok) return this.refused(outcome(null, 'rejected', opened.detail, opened.reason));
    const { content } = opened;
    if (opened.hash === this.stored?.hash) return undefined;
    if (content.seq <= this.seq) {
      const detail = `seq ${content.seq} is not greater than ${this.seq}, the key list in force`;
      return this.refused(outcome(content.seq, 'rejected', detail, 'stale-seq'));
    }
    const revoked = [...new Set([...this.revoked, ...content.revoked])];
    const back = opened.keys.find((k) => this.revoked.includes(k.id));
    if (back !== undefined) {
      const detail = `key ${back.id} was revoked before; a revoked key is never trusted again`;
      return this.refused(outcome(content.seq, 'rejected', detail, 'revoked-key'));
    }
    const entry: StoredKeyList = {
      seq: content.seq,
      hash: opened.hash,
      keys: content.keys,
      revoked,
      appliedAt: now,
    };
    try {
      await this.state.put(KEY_LIST_KEY, entry);
    } catch (err) {
      return this.refused(
        outcome(content.seq, 'rejected', `not stored: ${(err as Error).message}`, 'store-failed'),
      );
    }
    this.stored = entry;
    this.trusted = opened.keys;
    const status = outcome(
      content.seq,
      'applied',
      `key list ${content.seq} of ${content.createdAt}, signed by key ${opened.signer}: ${this.trusted.length} trusted, ${revoked.length} revoked`,
    );
    this.logger.info(
      { seq: content.seq, trusted: status.trusted, revoked, signer: opened.signer },
      'trusted keys replaced',
    );
    return status;
  }

  private refused(status: KeyListStatus): KeyListStatus {
    this.logger.warn(
      { seq: status.seq, reason: status.reason, detail: status.detail },
      'key list rejected; the trusted keys stay',
    );
    return status;
  }
}

function isStoredKeyList(value: unknown): value is StoredKeyList {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<Record<keyof StoredKeyList, unknown>>;
  return (
    typeof v.seq === 'number' &&
    typeof v.hash === 'string' &&
    Array.isArray(v.keys) &&
    v.keys.every((k) => typeof k === 'string') &&
    Array.isArray(v.revoked) &&
    v.revoked.every((k) => typeof k === 'string')
  );
}
