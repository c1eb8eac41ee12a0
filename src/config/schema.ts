import { z } from 'zod';
import { DEFAULT_ARBITER_ENTRIES } from '../actions/index.js';
import { parseBytes, parseDurationMs } from '../shared/index.js';

const port = z.number().int().min(0).max(65_535);
const host = z.string().min(1);
const positiveInt = z.number().int().positive();
const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDurationMs(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as 500ms, 30s, 5m or 2h' });
    return z.NEVER;
  }
  return ms;
});
const byteSize = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const bytes = parseBytes(v);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a size such as 512KiB, 256MiB or 1GiB' });
    return z.NEVER;
  }
  return bytes;
});

/** Everything `vigil run` can be told, with its defaults. Flags and VIGIL_* variables override the file. */
export const configSchema = z
  .object({
    gatewayId: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected 1-64 letters, digits, dots, dashes or underscores')
      .default('vigil'),
    data: z.string().min(1).default('./data'),
    /** A rules directory; unset means the rules shipped with the gateway. */
    rules: z.string().min(1).optional(),
    record: z.string().min(1).optional(),
    /**
     * 1: one thread. 2: the device edge (broker, TLS, auth, limits, decoding) on a thread of its own beside the
     * decision loop (docs/architecture.md, "Threads").
     */
    threads: z.union([z.literal(1), z.literal(2)], { error: 'expected 1 or 2' }).default(1),
    mqtt: z
      .object({
        host: host.default('0.0.0.0'),
        port: port.default(1883),
        maxPacketBytes: positiveInt.default(256 * 1024),
        /** Devices may connect without credentials. For development only: the gateway warns at start-up. */
        allowAnonymous: z.boolean().default(false),
        /** Connections open at once on the MQTT listeners (TCP and TLS together). */
        maxConnections: positiveInt.default(10_000),
        /** Connections from one IP address that have not completed CONNECT; a NAT site's devices share one. */
        maxPendingPerAddress: positiveInt.default(1_000),
        /** A connection that has not completed CONNECT (TLS handshake included) this long after it opened is closed. */
        connectTimeout: duration.refine((ms) => ms >= 100, 'expected at least 100ms').default(30_000),
        /** Longest topic or subscription filter, in UTF-8 bytes. */
        maxTopicBytes: positiveInt.max(65_535).default(256),
        /** Most levels in a topic or filter; `devices/{id}/events/{type}` has 4. At most 100 (aedes). */
        maxTopicLevels: positiveInt.max(100).default(8),
        /** Subscriptions one connection may hold; a device needs one or two. */
        maxSubscriptions: positiveInt.default(100),
        /** Per device: a token bucket; over it publishes are dropped, and a device over it for `disconnectAfter` is disconnected. */
        publishRate: z
          .object({
            /** Sustained publishes per second; 0 turns the limit off. */
            perSecond: z.number().nonnegative().default(100),
            burst: positiveInt.default(200),
            disconnectAfter: duration.default(10_000),
          })
          .strict()
          .prefault({}),
        /** Persistent sessions (`clean: false`), kept in the data directory (docs/mqtt.md). */
        sessions: z
          .object({
            /** A session whose client has not been connected for this long is discarded. */
            expiry: duration.refine((ms) => ms >= 1_000, 'expected at least 1s').default(7 * 24 * 3_600_000),
            /** Messages held for one client (queued while it is away, or awaiting its acknowledgement). */
            maxQueued: positiveInt.default(1_000),
            maxQueuedBytes: positiveInt.default(1024 * 1024),
          })
          .strict()
          .prefault({}),
        /** Retained messages, kept in the data directory: per device (`devices/{id}/…`) and in all. */
        retained: z
          .object({
            maxPerDevice: positiveInt.default(100),
            maxCount: positiveInt.default(10_000),
            maxBytes: positiveInt.default(16 * 1024 * 1024),
          })
          .strict()
          .prefault({}),
        /** A TLS listener opens when `cert` and `key` are set; with `ca`, devices need client certificates. */
        tls: z
          .object({
            /** Default: the address of the TCP listener. */
            host: host.optional(),
            port: port.default(8883),
            cert: z.string().min(1).optional(),
            key: z.string().min(1).optional(),
            ca: z.string().min(1).optional(),
            /** A PEM CRL issued by `ca`: revoked client certificates are refused; reloaded when the file changes. */
            crl: z.string().min(1).optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    http: z
      .object({
        host: host.default('127.0.0.1'),
        port: port.default(8080),
        /** Bearer token the local API requires; required when `host` is not a loopback address. */
        token: z.string().min(16, 'expected at least 16 characters').optional(),
      })
      .strict()
      .prefault({}),
    upstream: z
      .object({
        url: z
          .string()
          .regex(
            /^(mqtts?|wss?|tcp|tls):\/\/./,
            'expected a broker URL such as mqtt://host:1883 or mqtts://host:8883',
          )
          .optional(),
        clientId: z.string().min(1).optional(),
        /** 4 (MQTT 3.1.1) or 5; the session is persistent with either. */
        protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
        /** MQTT 5: how long the cloud broker keeps the gateway's session while it is away. */
        sessionExpiry: duration.default(7 * 24 * 3_600_000),
        username: z.string().optional(),
        password: z.string().optional(),
        keepalive: duration.default(30_000),
        reconnect: duration.default(2_000),
        inflight: positiveInt.max(1_000).default(100),
        /** PEM files for mqtts://: a CA to trust beyond the system's, and a client certificate and key. */
        tls: z
          .object({
            ca: z.string().min(1).optional(),
            cert: z.string().min(1).optional(),
            key: z.string().min(1).optional(),
          })
          .strict()
          .prefault({}),
        /** The telemetry lane (`then.forward`): in memory, bounded, at most once; full, it drops `drop`. */
        telemetry: z
          .object({
            maxCount: positiveInt.default(10_000),
            maxBytes: positiveInt.default(8 * 1024 * 1024),
            drop: z.enum(['oldest', 'newest']).default('oldest'),
          })
          .strict()
          .prefault({}),
        /** Up to `max` actions per message, a JSON array; a batch not full goes after `within`. Unset: one per message. */
        batch: z
          .object({ max: positiveInt.max(1_000), within: duration.default(50) })
          .strict()
          .optional(),
      })
      .strict()
      .prefault({}),
    ingest: z
      .object({
        maxPayloadBytes: positiveInt.default(64 * 1024),
        /** Events from the cloud (`vigil/{gw}/events`): over a limit, refused, dead-lettered and acknowledged. */
        cloudEvents: z
          .object({
            maxBytes: positiveInt.default(64 * 1024),
            /** For all cloud events together, a token bucket: sustained events per second; 0 turns it off. */
            rate: z
              .object({
                perSecond: z.number().nonnegative().default(1_000),
                burst: positiveInt.default(10_000),
              })
              .strict()
              .prefault({}),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    outbox: z
      .object({
        maxCount: positiveInt.default(100_000),
        maxBytes: positiveInt.default(64 * 1024 * 1024),
        /** Ids of actions the cloud acknowledged, remembered so that recovery does not send them again. */
        maxDelivered: positiveInt.default(1_000_000),
      })
      .strict()
      .prefault({}),
    profiles: z
      .object({ cacheSize: positiveInt.default(100_000) })
      .strict()
      .prefault({}),
    /** LevelDB's memory (docs/benchmarks.md, "Memory with idle device connections"). */
    store: z
      .object({
        /**
         * Writes held in memory before they go to a table; a start replays what the log holds into it. LevelDB's
         * own default; larger speeds bulk writes and costs as much memory, kept once touched.
         */
        writeBuffer: byteSize.default(4 * 1024 * 1024),
        /** Blocks read from tables, uncompressed; profiles read are also kept decoded (`profiles.cacheSize`). */
        blockCache: byteSize.default(8 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    /** Bounds on what the gateway holds in memory; what each refuses or forgets is counted (docs/durability.md). */
    limits: z
      .object({
        /** Devices whose last-seen time is kept (those connected, known or awaited by a timer); past it the oldest go. */
        lastSeen: positiveInt.default(200_000),
        /** Inputs waiting for their device's profile read, all devices together. */
        ingestQueue: positiveInt.default(50_000),
        /** Inputs being recorded or recorded and not yet applied (recovery, a checkpoint, a slow or full disk). */
        held: positiveInt.default(200_000),
        /** Bytes of events not yet written to the `record` file. */
        recorderBytes: byteSize.default(16 * 1024 * 1024),
        /**
         * Cooldowns, exclusive sends and contact keys the arbiter remembers; past it those that end soonest are
         * forgotten early (docs/arbitration.md, "Memory").
         */
        arbiterEntries: positiveInt.default(DEFAULT_ARBITER_ENTRIES),
        /**
         * After this long with few inputs (20 a second, or a tenth of the busiest rate before), a gateway that grew
         * by 32 MiB or more gives the memory V8 holds and does not use back: one full collection, at most every 10
         * minutes; 0 never (docs/benchmarks.md, "Memory given back when quiet").
         */
        releaseWhenQuiet: duration.default(60_000),
      })
      .strict()
      .prefault({}),
    /** The journal of inputs and the checkpoints of state (docs/durability.md). */
    durability: z
      .object({
        checkpointInterval: duration.refine((ms) => ms >= 100, 'expected at least 100ms').default(5 * 60_000),
        checkpointRecords: positiveInt.default(500_000),
        /** ...and after this many, the most a restart replays, unless the state is too large to rewrite that often. */
        replayRecords: positiveInt.default(50_000),
        /** Cap of the grace period of timers whose deadline passed while the gateway was down. */
        maxGrace: duration.default(5 * 60_000),
        syncInterval: duration.refine((ms) => ms >= 10, 'expected at least 10ms').default(1_000),
        /** How long a QoS 1 commit waits for more publishes to share its fdatasync; 0 commits at once. */
        commitWindow: duration.default(0),
        /**
         * The journal and checkpoints kept after they are needed, for `vigil replay --journal`: checkpoints younger
         * than `age`, as long as they and the journal after the oldest fit in `size` (the two newest always stay).
         */
        retention: z
          .object({ age: duration.default(24 * 3_600_000), size: byteSize.default(128 * 1024 * 1024) })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /** Rules and profiles from the cloud (docs/sync.md). */
    sync: z
      .object({
        /** Ed25519 public keys (PEM files) whose signed rule bundles the gateway accepts. */
        trustedKeys: z.array(z.string().min(1)).default([]),
        /** How often shadow rules publish what they would have done differently (docs/sync.md, "Shadow rules"). */
        shadowReport: duration.refine((ms) => ms >= 100, 'expected at least 100ms').default(60_000),
        /** Groups this gateway belongs to: it takes bundles and key lists from `vigil/groups/{group}/…` too. */
        groups: z
          .array(
            z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected a group name of letters, digits, _ . -'),
          )
          .default([]),
        /** How often the retained health report goes to `vigil/{gw}/health`; 0 turns it off. */
        healthEvery: duration.default(30_000),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
