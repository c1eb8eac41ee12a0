/**
 * Encodes whole PUBLISH packets into one buffer each, so that a device's event costs one socket write and none
 * of mqtt.js's per-packet work (packet objects, its outgoing store, a keep-alive timer reset per packet).
 */

/** A topic as it goes on the wire: its 2-byte length, then its UTF-8 bytes. Encoded once per device. */
export function encodeTopic(topic: string): Buffer {
  const bytes = Buffer.from(topic, 'utf8');
  const out = Buffer.allocUnsafe(2 + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  bytes.copy(out, 2);
  return out;
}

/** [MQTT-3.3.1] fixed header: PUBLISH, DUP 0, RETAIN 0, and the QoS in bits 1–2. */
const PUBLISH = 0x30;

/** A PUBLISH at QoS 0 when `packetId` is 0, at QoS 1 otherwise (`packetId` then 1–65535, [MQTT-2.3.1-1]). */
export function publishPacket(topic: Buffer, payload: Buffer, packetId = 0): Buffer {
  const idBytes = packetId === 0 ? 0 : 2;
  const remaining = topic.length + idBytes + payload.length;
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4;
  const packet = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  packet[0] = packetId === 0 ? PUBLISH : PUBLISH | 0x02;
  // [MQTT-2.2.3] remaining length: 7 bits per byte, least significant first, high bit set when more follow.
  let n = remaining;
  let at = 1;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    packet[at++] = byte;
  } while (n > 0);
  at += topic.copy(packet, at);
  if (idBytes > 0) at = packet.writeUInt16BE(packetId, at);
  payload.copy(packet, at);
  return packet;
}
