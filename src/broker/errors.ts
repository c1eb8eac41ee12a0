/**
 * A client sent a packet over the broker's size limit. Not a VigilError: it never leaves broker/,
 * it ends the one connection (as the socket's error) and is logged with the client.
 */
export class PacketTooLargeError extends Error {
  readonly code = 'VIGIL_MQTT_PACKET_TOO_LARGE';
  constructor(
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`MQTT packet of ${bytes} bytes is over the limit of ${maxBytes}`);
    this.name = 'PacketTooLargeError';
  }
}

/** The first bytes of a packet cannot be an MQTT fixed header. */
export class MalformedPacketError extends Error {
  readonly code = 'VIGIL_MQTT_MALFORMED';
  constructor(message: string) {
    super(message);
    this.name = 'MalformedPacketError';
  }
}

/** The gateway tried to publish on a broker that is closing or closed. */
export class BrokerClosedError extends Error {
  readonly code = 'VIGIL_BROKER_CLOSED';
  constructor(topic: string) {
    super(`the broker is closed; nothing published on ${topic}`);
    this.name = 'BrokerClosedError';
  }
}
