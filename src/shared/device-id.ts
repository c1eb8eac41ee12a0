/**
 * What a device id may look like: it is a topic level (`devices/{id}/…`), an MQTT client id and user
 * name, and a certificate's common name, so no `/`, wildcards, `$`, spaces or control characters.
 */
const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;

/** Whether `id` can name a device: 1–128 letters, digits and `_ . : @ -`, starting with a letter or digit. */
export function isDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id);
}
