/** A device topic split into its parts, or why it is not one. */
export type DeviceTopic =
  { ok: true; deviceId: string; type: string } | { ok: false; reason: 'topic'; deviceId?: string };

/**
 * Parses `devices/{deviceId}/events/{type}`: exactly four levels, none of them empty. On failure the
 * device id is still given when the topic starts with `devices/{deviceId}/`, so the reject can name it.
 */
export function parseDeviceTopic(topic: string): DeviceTopic {
  const levels = topic.split('/');
  const [root, deviceId, events, type] = levels;
  if (
    levels.length === 4 &&
    root === 'devices' &&
    events === 'events' &&
    isLevel(deviceId) &&
    isLevel(type)
  ) {
    return { ok: true, deviceId, type };
  }
  if (root === 'devices' && isLevel(deviceId)) return { ok: false, reason: 'topic', deviceId };
  return { ok: false, reason: 'topic' };
}

/** A usable topic level: not empty, and no wildcard (a publish topic cannot hold one [MQTT-3.3.2-2]). */
export function isLevel(level: string | undefined): level is string {
  return level !== undefined && level.length > 0 && !level.includes('+') && !level.includes('#');
}
