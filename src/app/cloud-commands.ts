import {
  CloudCommandMetrics,
  cloudCommandAction,
  cloudCommandOf,
  cloudCommandOutboxId,
  parseCloudCommand,
  type CloudCommandRefusal,
  type CloudCommandStatus,
  type CommandFate,
  type DeviceCommands,
} from '../commands/index.js';
import type { CredentialStore } from '../credentials/index.js';
import { upstreamTopics, type Action } from '../shared/index.js';
import type { CloudMessage } from '../upstream/index.js';
import type { DecisionModule } from './decision.js';
import type { Foundation } from './foundation.js';
import type { UplinkModule } from './uplink.js';

/** Statuses held while the uplink is down, at most; past it the oldest is dropped (and logged). */
const MAX_HELD_STATUSES = 10_000;
/** How often held statuses are offered to the uplink again. */
const FLUSH_EVERY_MS = 1_000;

/** The statuses of commands from the cloud, reported on `vigil/{gw}/commands/status` (docs/sync.md). */
export interface CloudCommandReports {
  readonly metrics: CloudCommandMetrics;
  /** For `DeviceCommands.onFate`: reports what became of a command from the cloud; others are ignored. */
  readonly onFate: (action: Action, fate: CommandFate, reason: string) => void;
  readonly report: (status: CloudCommandStatus) => void;
  readonly stop: () => void;
}

/**
 * Reports statuses upstream at QoS 1. While the uplink is down they are held in memory (bounded) and sent once
 * it is back; a status held when the gateway stops is lost (the command itself is not).
 */
export function cloudCommandReports(
  base: Foundation,
  decision: DecisionModule,
  uplink: UplinkModule,
): CloudCommandReports {
  const { logger } = base;
  const topic = upstreamTopics(base.gatewayId).commandsStatus;
  const metrics = new CloudCommandMetrics(base.metrics.registry);
  const held: string[] = [];
  const flush = (): void => {
    if (uplink.state() !== 'connected') return;
    for (const body of held.splice(0)) uplink.publishStatus(topic, body);
  };
  const timer = setInterval(flush, FLUSH_EVERY_MS);
  timer.unref();
  const report = (status: CloudCommandStatus): void => {
    metrics.statuses.inc({ status: status.status });
    held.push(JSON.stringify(status));
    if (held.length > MAX_HELD_STATUSES) {
      logger.warn(
        { dropped: held.shift() },
        'command status dropped: too many held while the uplink is down',
      );
    }
    flush();
  };
  return {
    metrics,
    report,
    onFate: (action, fate, reason) => {
      const cloud = cloudCommandOf(action);
      if (cloud === undefined) return;
      const at = decision.wallClock.now();
      if (fate === 'dropped') {
        metrics.refused.inc({ reason: 'outbox' });
        report({ id: cloud.id, status: 'refused', reason, at });
      } else report({ id: cloud.id, status: fate, reason, at });
      logger.info(
        { id: cloud.id, device: action.actor, command: action.action, fate, reason },
        'cloud command',
      );
    },
    stop: () => clearInterval(timer),
  };
}

export interface CloudCommandDeps {
  readonly reports: CloudCommandReports;
  readonly commands: DeviceCommands;
  readonly credentials: CredentialStore;
}

/**
 * The handler of `vigil/{gw}/commands`. A command is acknowledged to the cloud once it is synced to the command
 * outbox; a refused one at once, with a `refused` status. Known devices: those with a profile, a credential, or
 * an input in the journal (a connect, an event).
 */
export function cloudCommandHandler(
  base: Foundation,
  decision: DecisionModule,
  deps: CloudCommandDeps,
): (payload: Buffer, message: CloudMessage) => Promise<void> {
  const { logger, store, config } = base;
  const { reports, commands, credentials } = deps;
  const { metrics } = reports;
  const maxBytes = config.ingest.cloudEvents.maxBytes;
  const refuse = (id: string | undefined, reason: CloudCommandRefusal, detail: string, by?: string): void => {
    metrics.refused.inc({ reason });
    logger.warn({ id, reason, detail, by }, 'command from the cloud refused');
    reports.report({ id: id ?? null, status: 'refused', reason: detail, at: decision.wallClock.now() });
  };
  const known = async (device: string): Promise<boolean> => {
    if (decision.durable.hasSeen(device)) return true;
    if ((await store.profiles.get(device)) !== undefined || (await credentials.has(device))) return true;
    // Until recovery has replayed the journal's tail, a device seen only there is not known yet.
    await decision.recovered.catch(() => undefined);
    return decision.durable.hasSeen(device);
  };

  return async (payload, message) => {
    metrics.received.inc();
    const parsed = parseCloudCommand(payload, maxBytes);
    if (!parsed.ok) return refuse(parsed.id, parsed.reason, parsed.detail);
    const cmd = parsed.command;
    const seen = {
      id: cmd.id,
      device: cmd.device,
      command: cmd.command,
      by: cmd.by,
      messageId: message.messageId,
    };
    const outboxId = cloudCommandOutboxId(cmd.id);
    if (store.commands.has(outboxId) || store.commands.isAcknowledged(outboxId)) {
      metrics.duplicates.inc();
      logger.info(seen, 'command from the cloud already queued or carried out: not queued again');
      return;
    }
    if (!(await known(cmd.device))) {
      return refuse(cmd.id, 'unknown-device', `unknown device ${cmd.device}`, cmd.by);
    }
    // Rejects when it cannot be written: no PUBACK, and the cloud broker delivers the command again.
    const result = await commands.fromCloud(cloudCommandAction(base.gatewayId, cmd, decision.clock.now()));
    if (result.status === 'too-large') {
      return refuse(cmd.id, 'too-large', 'the command is larger than the whole command outbox', cmd.by);
    }
    if (result.status !== 'queued') metrics.duplicates.inc();
    logger.info({ ...seen, ttlMs: cmd.ttlMs, result: result.status }, 'command from the cloud');
  };
}
