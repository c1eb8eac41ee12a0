import type { Logger } from 'pino';
import type { ProfileStore, Sublevel } from '../store/index.js';
import { parseProfileBatch, type ProfileBatchLimit } from './profile-batch.js';

/** Key of the last applied batch's sequence number in the `state` sublevel. */
export const PROFILE_SEQ_KEY = 'sync/profiles/seq';

/**
 * What the gateway did with a profile batch, published on `vigil/{gw}/profiles/status`:
 * `applied`; `duplicate` (its seq was applied before: nothing changes); `refused` (a gap, or an invalid
 * batch: nothing changes; the cloud sends again from `expected`).
 */
export interface ProfileBatchStatus {
  gateway: string;
  /** The batch's seq; null when it could not be read. */
  seq: number | null;
  status: 'applied' | 'duplicate' | 'refused';
  reason?: 'gap' | 'invalid' | 'store-failed';
  detail: string;
  /** The seq the gateway applies next. */
  expected: number;
  upserts: number;
  deletes: number;
  /** ISO 8601 gateway time. */
  time: string;
}

export interface ProfileSyncOptions {
  gateway: string;
  profiles: Pick<ProfileStore, 'applyBatch'>;
  /** Where the last applied seq is kept, written in the same LevelDB batch as the profiles. */
  state: Sublevel;
  publish: (status: ProfileBatchStatus) => void;
  logger: Logger;
  now: () => number;
  /** Counts a refused batch: the status's reason, or the limit it is over. */
  refused?: (reason: ProfileBatchRefusal) => void;
}

/** Why a batch was refused, as counted: the status's reason, or the limit an invalid batch is over. */
export type ProfileBatchRefusal = NonNullable<ProfileBatchStatus['reason']> | ProfileBatchLimit;

/**
 * Applies profile batches from the cloud in sequence order, each atomically with its sequence number:
 * a replayed batch is a duplicate and changes nothing; a batch after a gap is refused, not held, and the
 * status says which seq to send next (only the cloud can fill a gap: the upstream session keeps what was
 * published at QoS 1 while the gateway was away, but not what the cloud never sent or sent at QoS 0).
 */
export class ProfileSync {
  private last: number;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly opts: ProfileSyncOptions,
    last: number,
  ) {
    this.last = last;
  }

  static async open(opts: ProfileSyncOptions): Promise<ProfileSync> {
    const stored = await opts.state.get(PROFILE_SEQ_KEY);
    return new ProfileSync(opts, typeof stored === 'number' && Number.isSafeInteger(stored) ? stored : 0);
  }

  /** The seq of the last batch applied; 0 before the first. */
  get lastSeq(): number {
    return this.last;
  }

  /** Handles one message of `vigil/{gw}/profiles`, after those before it. */
  handle(payload: Buffer): Promise<ProfileBatchStatus> {
    const next = this.queue.then(() => this.apply(payload));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async apply(payload: Buffer): Promise<ProfileBatchStatus> {
    const parsed = parseProfileBatch(payload);
    if (!parsed.ok) {
      this.opts.refused?.(parsed.limit ?? 'invalid');
      return this.outcome(parsed.seq ?? null, 'refused', 'invalid', parsed.detail, 0, 0);
    }
    const { batch } = parsed;
    const counts = [batch.upserts.length, batch.deletes.length] as const;
    if (batch.seq <= this.last) {
      return this.outcome(
        batch.seq,
        'duplicate',
        undefined,
        `batch ${batch.seq} was applied before`,
        ...counts,
      );
    }
    if (batch.seq !== this.last + 1) {
      this.opts.refused?.('gap');
      return this.outcome(
        batch.seq,
        'refused',
        'gap',
        `batches ${this.last + 1} to ${batch.seq - 1} are missing; send from ${this.last + 1}`,
        ...counts,
      );
    }
    try {
      await this.opts.profiles.applyBatch(batch, [
        { sublevel: this.opts.state, key: PROFILE_SEQ_KEY, value: batch.seq },
      ]);
    } catch (err) {
      this.opts.refused?.('store-failed');
      return this.outcome(
        batch.seq,
        'refused',
        'store-failed',
        `not stored: ${(err as Error).message}`,
        ...counts,
      );
    }
    this.last = batch.seq;
    return this.outcome(batch.seq, 'applied', undefined, `batch ${batch.seq} applied`, ...counts);
  }

  private outcome(
    seq: number | null,
    status: ProfileBatchStatus['status'],
    reason: ProfileBatchStatus['reason'],
    detail: string,
    upserts: number,
    deletes: number,
  ): ProfileBatchStatus {
    const out: ProfileBatchStatus = {
      gateway: this.opts.gateway,
      seq,
      status,
      ...(reason !== undefined ? { reason } : {}),
      detail,
      expected: this.last + 1,
      upserts,
      deletes,
      time: new Date(this.opts.now()).toISOString(),
    };
    const fields = { seq, status, reason, detail, upserts, deletes, expected: out.expected };
    if (status === 'refused') this.opts.logger.warn(fields, 'profile batch refused');
    else if (status === 'duplicate') this.opts.logger.info(fields, 'profile batch already applied; ignored');
    else this.opts.logger.info(fields, 'profile batch applied');
    this.opts.publish(out);
    return out;
  }
}
