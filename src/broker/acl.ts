import {
  deviceCommandFilter,
  deviceCommandPrefix,
  deviceTopicPrefix,
  isGatewayTopic,
} from '../shared/index.js';

/** Who an outside connection is, once it is authenticated. */
export type Identity =
  /** Proved to be this device, by its secret or its client certificate. */
  | { kind: 'device'; deviceId: string }
  /** Connected without credentials, which only `allowAnonymous` permits (development). */
  | { kind: 'anonymous' };

export interface TopicLimits {
  /** Longest topic or topic filter, in UTF-8 bytes. */
  maxTopicBytes: number;
  /** Most levels (`/`-separated parts) in a topic or topic filter. */
  maxTopicLevels: number;
}

/**
 * Why a topic is refused: `acl` it belongs to someone else (or to the gateway), `topic-length` and
 * `topic-levels` it is over a limit, `malformed` it breaks the protocol (the connection then closes).
 */
export type TopicRefusal = 'acl' | 'topic-length' | 'topic-levels' | 'malformed';

export type TopicVerdict = { ok: true } | { ok: false; refusal: TopicRefusal; reason: string };

const OK: TopicVerdict = { ok: true };

/**
 * May this client publish on `topic`? A device only under `devices/{its id}/`; nobody from outside
 * on `$…` topics (the broker's) or `vigil/…` (the gateway's own, such as dead letters).
 */
export function checkPublish(identity: Identity, topic: string, limits: TopicLimits): TopicVerdict {
  const shape = checkShape(topic, limits);
  if (!shape.ok) return shape;
  // [MQTT-3.3.2-2] aedes closes the connection on a wildcard in a topic name before this runs.
  if (topic.includes('+') || topic.includes('#')) return malformed('a topic name cannot hold a wildcard');
  const reserved = reservedPrefix(topic);
  if (reserved !== undefined) return acl(`${reserved} topics are not open to clients`);
  if (identity.kind === 'anonymous') return OK;
  if (!underOwnPrefix(topic, identity.deviceId)) {
    return acl(`device ${identity.deviceId} may publish only under ${deviceTopicPrefix(identity.deviceId)}`);
  }
  return OK;
}

const DEVICES_PREFIX = deviceTopicPrefix('').slice(0, -1);

/** `topic.startsWith(deviceTopicPrefix(deviceId))`, read in place: this runs for every publish. */
function underOwnPrefix(topic: string, deviceId: string): boolean {
  const idAt = DEVICES_PREFIX.length;
  return (
    topic.startsWith(DEVICES_PREFIX) &&
    topic.startsWith(deviceId, idAt) &&
    topic.charCodeAt(idAt + deviceId.length) === 47 // '/'
  );
}

/**
 * May this client subscribe to `filter`? A device only to its own commands
 * (`devices/{its id}/commands/#` or a filter within it); nobody from outside to `$…` topics.
 */
export function checkSubscribe(identity: Identity, filter: string, limits: TopicLimits): TopicVerdict {
  const shape = checkShape(filter, limits);
  if (!shape.ok) return shape;
  // [MQTT-4.7.2-1] `#` never matches `$` topics; an explicit `$SYS/#` or `$share/…` is refused here.
  if (filter.startsWith('$')) return acl('$ topics are not open to clients');
  if (identity.kind === 'anonymous') return OK;
  if (!filter.startsWith(deviceCommandPrefix(identity.deviceId))) {
    return acl(`device ${identity.deviceId} may subscribe only to ${deviceCommandFilter(identity.deviceId)}`);
  }
  return OK;
}

function checkShape(topic: string, limits: TopicLimits): TopicVerdict {
  // [MQTT-1.5.3-2] no U+0000; U+FFFD is what mqtt-packet makes of ill-formed UTF-8 [MQTT-1.5.3-1].
  if (topic.includes('\u0000')) return malformed('the topic holds U+0000');
  if (topic.includes('\uFFFD')) return malformed('the topic is not well-formed UTF-8');
  const bytes = Buffer.byteLength(topic, 'utf8');
  if (bytes > limits.maxTopicBytes) {
    return {
      ok: false,
      refusal: 'topic-length',
      reason: `topic of ${bytes} bytes, over ${limits.maxTopicBytes}`,
    };
  }
  const levels = countLevels(topic);
  if (levels > limits.maxTopicLevels) {
    return {
      ok: false,
      refusal: 'topic-levels',
      reason: `topic of ${levels} levels, over ${limits.maxTopicLevels}`,
    };
  }
  return OK;
}

function reservedPrefix(topic: string): string | undefined {
  if (topic.startsWith('$')) return '$';
  if (isGatewayTopic(topic)) return 'vigil/';
  return undefined;
}

function countLevels(topic: string): number {
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) levels++;
  return levels;
}

function acl(reason: string): TopicVerdict {
  return { ok: false, refusal: 'acl', reason };
}

function malformed(reason: string): TopicVerdict {
  return { ok: false, refusal: 'malformed', reason };
}
