/**
 * Every MQTT topic Vigil uses, built and parsed here and nowhere else. The strings are a public
 * contract (README, "Topics"): devices, business systems and the cloud depend on them.
 *
 * On the gateway's broker: `devices/{id}/events/{type}` (device to gateway),
 * `devices/{id}/commands/{name}` (gateway to device) and `vigil/deadletter` (refused publishes).
 * On the cloud broker: `vigil/{gw}/…`, `{gw}` being the gateway id (docs/architecture.md, "Upstream topics").
 */

const DEVICES = 'devices';
const EVENTS = 'events';
const DEVICES_PREFIX = `${DEVICES}/`;
const COMMANDS = 'commands';
/** The first level of the gateway's own topics, which no outside client may publish on. */
const GATEWAY = 'vigil';

/** Local topic where refused publishes are reported, with the reason. */
export const DEAD_LETTER_TOPIC = `${GATEWAY}/deadletter`;

/** A topic no client can subscribe to (`$` topics are refused): the broker sends a dropped publish there. */
export const DROPPED_TOPIC = `$${GATEWAY}/dropped`;

/** The device event topic scheme, as error messages name it. */
export const DEVICE_EVENT_SCHEME = `${DEVICES}/{deviceId}/${EVENTS}/{type}`;

/** `devices/{id}/`: everything a device may publish starts with it. */
export function deviceTopicPrefix(deviceId: string): string {
  return `${DEVICES}/${deviceId}/`;
}

/** `devices/{id}/events/{type}`: where a device publishes an event. */
export function deviceEventTopic(deviceId: string, type: string): string {
  return `${deviceTopicPrefix(deviceId)}${EVENTS}/${type}`;
}

/** `devices/{id}/commands/`: every command to a device starts with it. */
export function deviceCommandPrefix(deviceId: string): string {
  return `${deviceTopicPrefix(deviceId)}${COMMANDS}/`;
}

/** `devices/{id}/commands/{name}`: where the gateway sends a device a command. */
export function deviceCommandTopic(deviceId: string, name: string): string {
  return `${deviceCommandPrefix(deviceId)}${name}`;
}

/** `devices/{id}/commands/#`: what a device subscribes to for its commands. */
export function deviceCommandFilter(deviceId: string): string {
  return `${deviceCommandPrefix(deviceId)}#`;
}

/** A device event topic split into its parts, or why it is not one. */
export type DeviceTopic =
  | { readonly ok: true; readonly deviceId: string; readonly type: string }
  | { readonly ok: false; readonly reason: 'topic'; readonly deviceId?: string };

/**
 * Device event topics parsed before, with their parts: a device publishes on a few topics over and over, and each
 * parse made its result and two strings. Once full it takes no more, and the topics past it are parsed each time, as
 * before: emptying it instead, with more topics in use than it holds, made every parse a miss and an insert, about four
 * times the parse alone.
 */
const parsedTopics = new Map<string, DeviceTopic>();
const PARSED_TOPICS_MAX = 8_192;

/**
 * Parses `devices/{deviceId}/events/{type}`: exactly four levels, none of them empty. On failure the
 * device id is still given when the topic starts with `devices/{deviceId}/`, so the reject can name it. The result
 * may be shared with an earlier parse of the same topic (it is frozen).
 */
export function parseDeviceTopic(topic: string): DeviceTopic {
  const known = parsedTopics.get(topic);
  if (known !== undefined) return known;
  const parsed = parseDeviceTopicAnew(topic);
  if (parsed.ok && parsedTopics.size < PARSED_TOPICS_MAX) parsedTopics.set(topic, Object.freeze(parsed));
  return parsed;
}

function parseDeviceTopicAnew(topic: string): DeviceTopic {
  // Read in place, without splitting.
  if (!topic.startsWith(DEVICES_PREFIX)) return { ok: false, reason: 'topic' };
  const idEnd = topic.indexOf('/', DEVICES_PREFIX.length);
  const deviceId = topic.slice(DEVICES_PREFIX.length, idEnd === -1 ? topic.length : idEnd);
  if (!isTopicLevel(deviceId)) return { ok: false, reason: 'topic' };
  const typeStart = idEnd + 1 + EVENTS.length + 1;
  if (
    idEnd !== -1 &&
    topic.startsWith(EVENTS, idEnd + 1) &&
    topic.charCodeAt(typeStart - 1) === 47 && // '/'
    topic.indexOf('/', typeStart) === -1
  ) {
    const type = topic.slice(typeStart);
    if (isTopicLevel(type)) return { ok: true, deviceId, type };
  }
  return { ok: false, reason: 'topic', deviceId };
}

/** The command name of `devices/{deviceId}/commands/{name}`, when `topic` is a command to `deviceId`. */
export function parseDeviceCommandTopic(topic: string, deviceId: string): string | undefined {
  const prefix = deviceCommandPrefix(deviceId);
  return topic.startsWith(prefix) ? topic.slice(prefix.length) : undefined;
}

/**
 * `devices/{id}/events` and anything below it: ingest takes these, and refuses with a reason the ones
 * outside `devices/{deviceId}/events/{type}` (an empty level, one level too many).
 */
export function isDeviceEventTopic(topic: string): boolean {
  // Read in place: this runs for every publish, before the topic is parsed.
  if (!topic.startsWith(DEVICES_PREFIX)) return false;
  const third = topic.indexOf('/', DEVICES.length + 1) + 1;
  if (third === 0 || !topic.startsWith(EVENTS, third)) return false;
  const after = third + EVENTS.length;
  return topic.length === after || topic.charCodeAt(after) === 47; // '/'
}

/** `vigil` and `vigil/…`: the gateway's own topics, such as dead letters. */
export function isGatewayTopic(topic: string): boolean {
  return topic === GATEWAY || topic.startsWith(`${GATEWAY}/`);
}

/** A usable topic level: not empty, and no wildcard (a publish topic cannot hold one [MQTT-3.3.2-2]). */
export function isTopicLevel(level: string | undefined): level is string {
  return level !== undefined && level.length > 0 && !level.includes('+') && !level.includes('#');
}

/** The topics of one gateway on the cloud broker; `+` as `gw` gives filters for every gateway. */
export function upstreamTopics(gw: string) {
  const root = `${GATEWAY}/${gw}`;
  return {
    /** Actions, gateway to cloud. */
    actions: `${root}/actions`,
    /** Retained `online` / `offline`, the last one as the will. */
    status: `${root}/status`,
    /** Retained signed rule bundle, cloud to gateway. */
    rules: `${root}/rules`,
    /** What the gateway did with a rules change. */
    rulesStatus: `${root}/rules/status`,
    /** Retained signed rule bundle to run as shadow rules beside the live ones, cloud to gateway. */
    rulesShadow: `${root}/rules/shadow`,
    /** What the shadow rules would have done differently, gateway to cloud (docs/sync.md, "Shadow rules"). */
    shadow: `${root}/shadow`,
    /** Profile batches, cloud to gateway. */
    profiles: `${root}/profiles`,
    /** What the gateway did with a profile batch. */
    profilesStatus: `${root}/profiles/status`,
    /** Business systems' events about devices, cloud to gateway. */
    events: `${root}/events`,
    /** Commands for the gateway's devices, cloud to gateway (docs/sync.md, "Commands from the cloud"). */
    commands: `${root}/commands`,
    /** What became of each command from the cloud: delivered, expired or refused. */
    commandsStatus: `${root}/commands/status`,
    /** Retained health report, gateway to cloud (docs/sync.md, "Fleet operations"). */
    health: `${root}/health`,
    /** Retained signed trusted-key list, cloud to gateway. */
    keys: `${root}/keys`,
    /** What the gateway did with a trusted-key list. */
    keysStatus: `${root}/keys/status`,
  } as const;
}

/** Topics a group of gateways shares on the cloud broker (`sync.groups`): retained bundles and key lists. */
export function groupTopics(group: string) {
  const root = `${GATEWAY}/groups/${group}`;
  return {
    /** Retained signed rule bundle for every gateway of the group. */
    rules: `${root}/rules`,
    /** Retained signed trusted-key list for every gateway of the group. */
    keys: `${root}/keys`,
  } as const;
}
