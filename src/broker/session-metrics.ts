import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { OccasionalLog } from './limits.js';

/** Something the session store did not keep for being over a limit: a message for a client, or a retained one. */
export type SessionDropNotice =
  | { what: 'queued'; limit: 'max-queued' | 'max-queued-bytes'; clientId: string; topic: string }
  | { what: 'retained'; limit: 'per-device' | 'max-count' | 'max-bytes'; topic: string };

/** What the session store holds now. */
export interface SessionCounts {
  sessions: number;
  queued: number;
  queuedBytes: number;
  retained: number;
  retainedBytes: number;
}

/** What the session store reports, as it takes it: callbacks of its options. */
export interface SessionObservers {
  onDrop(drop: SessionDropNotice): void;
  onExpired(clientId: string, queued: number): void;
  onWriteError(err: unknown, retryInMs: number): void;
  onWritesRecovered(): void;
}

/**
 * The metrics of the broker's sessions and retained messages, registered on `registry`, and the log lines: a drop
 * is logged at most once per 10 s per limit (with how many were not logged since), an expired session once.
 */
export function sessionMetrics(
  registry: Registry,
  logger: Logger,
  counts: () => SessionCounts,
): SessionObservers {
  const queuedDropped = new Counter({
    name: 'vigil_mqtt_session_messages_dropped_total',
    help: 'Messages not kept for a client of a persistent session, its queue being full: max-queued, max-queued-bytes',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  const retainedRefused = new Counter({
    name: 'vigil_mqtt_retained_refused_total',
    help: 'Retained messages not kept (delivered all the same) for a limit: per-device, max-count, max-bytes',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  const expired = new Counter({
    name: 'vigil_mqtt_sessions_expired_total',
    help: 'Persistent sessions discarded because their client stayed away for mqtt.sessions.expiry',
    registers: [registry],
  });
  const writeErrors = new Counter({
    name: 'vigil_mqtt_session_write_errors_total',
    help: 'Failed writes of MQTT sessions and retained messages to LevelDB (each is tried again)',
    registers: [registry],
  });
  for (const limit of ['max-queued', 'max-queued-bytes'] as const) queuedDropped.inc({ limit }, 0);
  for (const limit of ['per-device', 'max-count', 'max-bytes'] as const) retainedRefused.inc({ limit }, 0);
  gauges(registry, counts);
  const log = new OccasionalLog(logger);
  return {
    onDrop(drop) {
      const now = performance.now();
      if (drop.what === 'queued') {
        queuedDropped.inc({ limit: drop.limit });
        const { clientId, topic, limit } = drop;
        log.warn(`queued:${limit}`, now, { clientId, topic, limit }, 'mqtt session full: message not kept');
      } else {
        retainedRefused.inc({ limit: drop.limit });
        const { topic, limit } = drop;
        log.warn(`retained:${limit}`, now, { topic, limit }, 'mqtt retained message not kept: over a limit');
      }
    },
    onExpired(clientId, queued) {
      expired.inc();
      logger.info({ clientId, queued }, 'mqtt session expired: its client stayed away');
    },
    onWriteError(err, retryInMs) {
      writeErrors.inc();
      log.warn('write', performance.now(), { err, retryInMs }, 'mqtt sessions not written; trying again');
    },
    onWritesRecovered() {
      logger.info('mqtt sessions written again');
    },
  };
}

function gauges(registry: Registry, counts: () => SessionCounts): void {
  const gauge = (name: string, help: string, read: (c: SessionCounts) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(counts()));
      },
    });
  };
  gauge(
    'vigil_mqtt_sessions',
    'Persistent sessions the broker keeps (clients connected or away)',
    (c) => c.sessions,
  );
  gauge('vigil_mqtt_session_queued', 'Messages held for clients of persistent sessions', (c) => c.queued);
  gauge('vigil_mqtt_session_queued_bytes', 'Bytes those messages take on disk', (c) => c.queuedBytes);
  gauge('vigil_mqtt_retained', 'Retained messages the broker keeps', (c) => c.retained);
  gauge('vigil_mqtt_retained_bytes', 'Bytes they take on disk', (c) => c.retainedBytes);
}
