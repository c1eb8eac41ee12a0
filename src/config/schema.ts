import { z } from 'zod';
import { parseDurationMs } from '../shared/index.js';

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
    mqtt: z
      .object({
        host: host.default('0.0.0.0'),
        port: port.default(1883),
        maxPacketBytes: positiveInt.default(256 * 1024),
      })
      .strict()
      .prefault({}),
    http: z
      .object({ host: host.default('127.0.0.1'), port: port.default(8080) })
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
        username: z.string().optional(),
        password: z.string().optional(),
        keepalive: duration.default(30_000),
        reconnect: duration.default(2_000),
        inflight: positiveInt.max(1_000).default(100),
        /** Up to `max` actions per message, a JSON array; a batch not full goes after `within`. Unset: one per message. */
        batch: z
          .object({ max: positiveInt.max(1_000), within: duration.default(50) })
          .strict()
          .optional(),
      })
      .strict()
      .prefault({}),
    ingest: z
      .object({ maxPayloadBytes: positiveInt.default(64 * 1024) })
      .strict()
      .prefault({}),
    outbox: z
      .object({ maxCount: positiveInt.default(100_000), maxBytes: positiveInt.default(64 * 1024 * 1024) })
      .strict()
      .prefault({}),
    profiles: z
      .object({ cacheSize: positiveInt.default(100_000) })
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
