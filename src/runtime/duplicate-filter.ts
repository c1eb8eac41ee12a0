import { plainCbor } from '../shared/index.js';

/**
 * A recorded QoS 1 publish, as a checkpoint keeps it: client id, packet id, hash of topic and payload, arrival. A
 * packet id can come more than once, with different hashes.
 */
export type DuplicateEntry = [clientId: string, messageId: number, hash: number, at: number];

export interface DuplicateFilterOptions {
  /** Publishes remembered per client, the most recent ones; default 1,024. */
  perClient?: number | undefined;
  /** How long a recorded publish can be recognised when resent; default 10 minutes. */
  maxAgeMs?: number | undefined;
  /**
   * Senders that number their packets in sequence (see `DuplicateFilter`): every packet id of theirs is
   * remembered for `maxAgeMs`, not only the last `perClient`; default `UPSTREAM_SENDER`.
   */
  sequentialSenders?: readonly string[] | undefined;
  /**
   * Settles once every publish remembered so far is recorded (the journal's `recorded()`): what a resend of one
   * still being written waits for. Default: at once.
   */
  whenRecorded?: (() => Promise<void>) | undefined;
}

/**
 * The remembered publishes as a checkpoint takes them: the client ids once, and per publish its client's index and
 * three numbers in typed arrays. A checkpoint copies every remembered publish (up to 1,024 per device), and a tuple
 * each made that copy the largest allocation of a checkpoint at QoS 1, all of it kept until encoded (docs/benchmarks.md).
 * Its entries are `DuplicateEntry` tuples, made when iterated; `writeEntry` writes one with the plain CBOR writer, the
 * bytes of the tuple, without making it.
 */
export class DuplicateColumns implements Iterable<DuplicateEntry> {
  constructor(
    private readonly clientIds: readonly string[],
    private readonly clientOf: Uint32Array,
    private readonly numbers: Float64Array,
  ) {}

  get length(): number {
    return this.clientOf.length;
  }

  /** Entry `index` as its tuple. */
  entry(index: number): DuplicateEntry {
    const n = this.numbers;
    return [
      this.clientIds[this.clientOf[index] as number] as string,
      n[index * 3] as number,
      n[index * 3 + 1] as number,
      n[index * 3 + 2] as number,
    ];
  }

  /** Writes entry `index` with `plainCbor`'s writer: the bytes `writeValue` writes for its tuple. */
  writeEntry(index: number): void {
    const n = this.numbers;
    plainCbor.writeArrayHead(4);
    plainCbor.writeValue(this.clientIds[this.clientOf[index] as number]);
    plainCbor.writeValue(n[index * 3]);
    plainCbor.writeValue(n[index * 3 + 1]);
    plainCbor.writeValue(n[index * 3 + 2]);
  }

  *[Symbol.iterator](): Iterator<DuplicateEntry> {
    for (let i = 0; i < this.length; i++) yield this.entry(i);
  }
}

/** The client id under which the QoS 1 cloud events of the cloud broker are recorded. */
export const UPSTREAM_SENDER = '$upstream';

interface Remembered {
  messageId: number;
  hash: number;
  at: number;
  /** The connection it arrived on; -1 for one remembered from before a restart. */
  connection: number;
  /** The original's journal record while it is being written (see `recordedThrough`); 0 once it is recorded. */
  seq: number;
}

interface ClientState {
  /** By packet id and hash (`keyOf`): a new message that takes a remembered id does not evict the one before it. */
  entries: Map<number, Remembered>;
  /** How many publishes are remembered. */
  limit: number;
  /** The sender numbers its packets in sequence. */
  sequential: boolean;
  connection: number;
  /** From a new connection until its first new publish: what a client resends comes first [MQTT-4.4.0-1]. */
  resending: boolean;
}

const DEFAULT_PER_CLIENT = 1_024;
const DEFAULT_MAX_AGE_MS = 10 * 60_000;
/** Every packet id there is: a sender numbering in sequence has no more in use at once. */
const ALL_PACKET_IDS = 65_535;
const HASHES = 0x1_0000_0000;

/** One number for a packet id (16 bits) and a hash (32 bits): exact, below 2^53. */
function keyOf(messageId: number, hash: number): number {
  return messageId * HASHES + (hash >>> 0);
}

/**
 * Tells a resent QoS 1 publish that was already recorded from a new one, so that it is acknowledged and not
 * processed twice. A device resends what it sent without getting a PUBACK (the gateway crashed between
 * recording and acknowledging, or the connection dropped) with the same packet id.
 *
 * A publish is a resend when the same client sent the same packet id with the same topic and payload, and
 * either it carries the DUP flag [MQTT-3.3.1-1], or it is among the first publishes of a new connection and
 * the original came on an earlier one. The second case is there because clients that resend on reconnect
 * without setting DUP exist (mqtt.js does); a new publish ends it, so a client that reuses packet ids with
 * identical payloads loses at most the first one after reconnecting, and only when it repeats the last
 * one it sent under that id.
 *
 * A sender that numbers its packets in sequence (a broker, for the session it keeps for the gateway) gives an
 * id to another message only after going through the other 65,535: the same id
 * with the same topic and payload is a redelivery whenever it comes, DUP or not, on a new connection or on
 * the same one (aedes, resuming a session, can deliver a message published meanwhile twice on one connection).
 * The second delivery can come after the whole queue the broker kept for the session, thousands of messages
 * later: from such a sender every packet id is remembered (for the maximum age), not only the most recent ones.
 *
 * A packet id alone names no message for long: aedes starts every connection's ids at a random number, and so do
 * devices that lose their state, so after a reconnect a new message can take the id of one remembered (still
 * unacknowledged, and redelivered later under that id, or within the window). A publish is remembered by its
 * packet id and hash together: a new message under a remembered id is recorded and remembered beside the old
 * one, whose resend is still recognised. What cannot be told apart is a new message with the topic and payload
 * of the one remembered under its id: it is taken for a redelivery.
 */
export class DuplicateFilter {
  private readonly clients = new Map<string, ClientState>();
  private readonly perClient: number;
  private readonly maxAgeMs: number;
  private readonly sequentialSenders: ReadonlySet<string>;
  private readonly whenRecorded: () => Promise<void>;
  /** Every journal record through this one is recorded. */
  private recordedSeq = 0;

  constructor(opts: DuplicateFilterOptions = {}) {
    this.perClient = opts.perClient ?? DEFAULT_PER_CLIENT;
    this.maxAgeMs = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.sequentialSenders = new Set(opts.sequentialSenders ?? [UPSTREAM_SENDER]);
    this.whenRecorded = opts.whenRecorded ?? (() => Promise.resolve());
  }

  /**
   * The journal recorded everything through `seq`. A remembered publish knows its record's number rather than a
   * promise of it: a `then` per publish, its functions and its promise were most of what remembering one cost.
   */
  recordedThrough(seq: number): void {
    this.recordedSeq = seq;
  }

  /**
   * For a resend of a recorded publish: a promise that settles once the original is recorded (at once when
   * it already is). Undefined for a publish to process. `sequentialIds`: the sender numbers its packets in
   * sequence (see above).
   */
  resent(
    clientId: string,
    connection: number,
    messageId: number,
    dup: boolean,
    hash: number,
    sequentialIds = false,
  ): Promise<void> | undefined {
    const client = this.client(clientId);
    if (client.connection !== connection) {
      client.connection = connection;
      client.resending = true;
    }
    const entry = client.entries.get(keyOf(messageId, hash));
    const resend =
      entry !== undefined &&
      (dup || sequentialIds || client.sequential || (client.resending && entry.connection !== connection));
    if (!resend) {
      if (!dup) client.resending = false;
      return undefined;
    }
    // Seen on this connection now: the same packet id with the same payload later on is a new publish.
    entry.connection = connection;
    if (entry.seq > this.recordedSeq) return this.whenRecorded();
    entry.seq = 0;
    return Promise.resolve();
  }

  /**
   * A QoS 1 publish is being recorded as journal record `seq` (see `recordedThrough`); 0: it is recorded. A resend
   * while it is being written waits for `whenRecorded`, which rejects if the journal closes first: then the resend
   * is not acknowledged, as the original is not, and comes again after the restart.
   */
  remember(clientId: string, connection: number, messageId: number, hash: number, at: number, seq = 0): void {
    const client = this.client(clientId);
    const key = keyOf(messageId, hash);
    const { entries } = client;
    entries.delete(key);
    // A client at its limit forgets its oldest publish for this one: that entry is rewritten rather than a new one
    // made (nothing holds an entry once it is out of the map).
    let entry: Remembered | undefined;
    if (entries.size >= client.limit && entries.size > 0) {
      const oldest = entries.keys().next().value as number;
      entry = entries.get(oldest);
      entries.delete(oldest);
    }
    if (entry === undefined) entry = { messageId, hash, at, connection, seq };
    else {
      entry.messageId = messageId;
      entry.hash = hash;
      entry.at = at;
      entry.connection = connection;
      entry.seq = seq;
    }
    entries.set(key, entry);
    if (entries.size > client.limit) {
      const oldest = entries.keys().next();
      if (!oldest.done) entries.delete(oldest.value);
    }
  }

  /** Forgets publishes older than the maximum age, counted back from `now`. */
  prune(now: number): void {
    const before = now - this.maxAgeMs;
    // By `forEach`: a `for…of` over a map makes a [key, value] array per entry, and every checkpoint prunes them all.
    this.clients.forEach((client, id) => {
      client.entries.forEach((entry, key) => {
        if (entry.at < before) client.entries.delete(key);
      });
      if (client.entries.size === 0) this.clients.delete(id);
    });
  }

  /** The remembered publishes as of now, for a checkpoint: a compact copy (see `DuplicateColumns`). */
  snapshot(): DuplicateColumns {
    let count = 0;
    this.clients.forEach((client) => (count += client.entries.size));
    const clientIds: string[] = [];
    const clientOf = new Uint32Array(count);
    const numbers = new Float64Array(count * 3);
    let i = 0;
    this.clients.forEach((client, clientId) => {
      const c = clientIds.length;
      clientIds.push(clientId);
      client.entries.forEach((e) => {
        clientOf[i] = c;
        numbers[i * 3] = e.messageId;
        numbers[i * 3 + 1] = e.hash;
        numbers[i * 3 + 2] = e.at;
        i++;
      });
    });
    return new DuplicateColumns(clientIds, clientOf, numbers);
  }

  /** Remembers what a checkpoint kept, as from before the restart. */
  restore(entries: Iterable<DuplicateEntry>): void {
    for (const [clientId, messageId, hash, at] of entries) this.remember(clientId, -1, messageId, hash, at);
  }

  private client(clientId: string): ClientState {
    let client = this.clients.get(clientId);
    if (client === undefined) {
      const sequential = this.sequentialSenders.has(clientId);
      const limit = sequential ? Math.max(this.perClient, ALL_PACKET_IDS) : this.perClient;
      client = { entries: new Map(), limit, sequential, connection: -1, resending: false };
      this.clients.set(clientId, client);
    }
    return client;
  }
}
