import type { Counter, Registry } from 'prom-client';
import { metricFamilies } from '../runtime/index.js';
import { isDeviceId } from '../shared/device-id.js';
import { isTopicLevel, parseDurationMs, type Action } from '../shared/index.js';

/** The `scenario` of a command the cloud sent (no rule has a `$` in its id): how the command outbox tells them apart. */
export const CLOUD_COMMAND_SCENARIO = '$cloud';

/** Command outbox ids of cloud commands start with it, so that they never meet the ids of decided actions. */
const ID_PREFIX = 'cloud:';

/** The longest command id the gateway takes from the cloud. */
const MAX_ID_CHARS = 256;

/** A command from the cloud, as `vigil/{gw}/commands` carries it (docs/sync.md, "Commands from the cloud"). */
export interface CloudCommand {
  /** The cloud's id: a command is carried out once per id. */
  readonly id: string;
  readonly device: string;
  /** The last level of `devices/{device}/commands/{command}`. */
  readonly command: string;
  /** What the device receives, as JSON. */
  readonly data: unknown;
  readonly ttlMs: number;
  /** Who sent it, when the cloud says so: logged. */
  readonly by?: string;
}

/** A parsed command, or why it is refused (with its id when it had a readable one, for the status). */
export type ParsedCloudCommand =
  | { ok: true; command: CloudCommand }
  | { ok: false; reason: CloudCommandRefusal; detail: string; id?: string };

/** Why a command from the cloud is refused; the `reason` label of `vigil_cloud_commands_refused_total`. */
export type CloudCommandRefusal =
  'too-large' | 'json' | 'not-object' | 'missing-field' | 'bad-field' | 'unknown-device' | 'outbox';

/** What the gateway reports on `vigil/{gw}/commands/status`. */
export interface CloudCommandStatus {
  readonly id: string | null;
  readonly status: 'delivered' | 'expired' | 'refused';
  readonly reason: string | null;
  /** Gateway time, ms since the epoch. */
  readonly at: number;
}

/** Reads a command from the cloud; never throws. */
export function parseCloudCommand(payload: Buffer, maxBytes: number): ParsedCloudCommand {
  if (payload.length > maxBytes) {
    return { ok: false, reason: 'too-large', detail: `the command is over ${maxBytes} bytes` };
  }
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'json', detail: 'the command is not JSON' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, reason: 'not-object', detail: 'the command is not a JSON object' };
  }
  const fields = body as Record<string, unknown>;
  const rawId = fields['id'];
  const id =
    typeof rawId === 'string' && rawId.length > 0 && rawId.length <= MAX_ID_CHARS ? rawId : undefined;
  const refuse = (reason: CloudCommandRefusal, detail: string): ParsedCloudCommand =>
    id === undefined ? { ok: false, reason, detail } : { ok: false, reason, detail, id };
  for (const name of ['id', 'device', 'command', 'ttl']) {
    if (fields[name] === undefined) return refuse('missing-field', `"${name}" is missing`);
  }
  if (id === undefined)
    return refuse('bad-field', `"id" must be a string of 1 to ${MAX_ID_CHARS} characters`);
  const { device, command, ttl, data, by } = fields;
  if (typeof device !== 'string' || !isDeviceId(device)) {
    return refuse('bad-field', `"device" ${JSON.stringify(device)} is not a device id`);
  }
  if (typeof command !== 'string' || !isTopicLevel(command) || command.includes('/')) {
    return refuse('bad-field', `"command" ${JSON.stringify(command)} is not one topic level`);
  }
  const ttlMs = parseDurationMs(ttl);
  if (ttlMs === undefined || ttlMs <= 0) {
    return refuse('bad-field', `"ttl" ${JSON.stringify(ttl)} is not a positive duration (30s, 10m, 24h)`);
  }
  if (by !== undefined && typeof by !== 'string') return refuse('bad-field', '"by" must be a string');
  const parsed = { id, device, command, data: data ?? {}, ttlMs };
  return { ok: true, command: by === undefined ? parsed : { ...parsed, by } };
}

/** The command as the command outbox keeps it: an `Action` whose payload carries the cloud's fields. */
export function cloudCommandAction(gateway: string, cmd: CloudCommand, receivedAt: number): Action {
  return {
    id: ID_PREFIX + cmd.id,
    gateway,
    scenario: CLOUD_COMMAND_SCENARIO,
    action: cmd.command,
    actor: cmd.device,
    priority: 0,
    category: CLOUD_COMMAND_SCENARIO,
    decidedAt: receivedAt,
    eventAt: receivedAt,
    payload: { id: cmd.id, data: cmd.data, expiresAt: receivedAt + cmd.ttlMs },
  };
}

/** The cloud's id and the expiry of a queued cloud command; undefined for a command a rule decided. */
export function cloudCommandOf(action: Action): { id: string; data: unknown; expiresAt: number } | undefined {
  if (action.scenario !== CLOUD_COMMAND_SCENARIO) return undefined;
  const { id, data, expiresAt } = action.payload;
  if (typeof id !== 'string' || typeof expiresAt !== 'number') return undefined;
  return { id, data, expiresAt };
}

/** The command outbox id of the cloud's command `id`. */
export function cloudCommandOutboxId(id: string): string {
  return ID_PREFIX + id;
}

/** What commands from the cloud count. */
export class CloudCommandMetrics {
  readonly received: Counter;
  readonly statuses: Counter<'status'>;
  readonly refused: Counter<'reason'>;
  readonly duplicates: Counter;

  constructor(registry: Registry) {
    const { counter } = metricFamilies(registry);
    this.received = counter(
      'vigil_cloud_commands_received_total',
      'Commands received on vigil/{gw}/commands',
    );
    this.statuses = counter(
      'vigil_cloud_commands_status_total',
      'Outcomes of commands from the cloud, by status (delivered, expired, refused)',
      { labels: ['status'] },
    );
    this.refused = counter(
      'vigil_cloud_commands_refused_total',
      'Commands from the cloud refused, by reason (json, not-object, missing-field, bad-field, unknown-device, too-large, outbox)',
      { labels: ['reason'] },
    );
    this.duplicates = counter(
      'vigil_cloud_commands_duplicate_total',
      'Commands from the cloud with an id already queued or carried out: acknowledged, not queued again',
    );
  }
}
