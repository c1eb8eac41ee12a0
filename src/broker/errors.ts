import { VigilError } from '../shared/index.js';

/** A client sent a packet over the broker's size limit: it ends that one connection, logged with the client. */
export class PacketTooLargeError extends VigilError {
  constructor(bytes: number, maxBytes: number) {
    super('VIGIL_MQTT_PACKET_TOO_LARGE', `MQTT packet of ${bytes} bytes is over the limit of ${maxBytes}`);
  }
}

/** The first bytes of a packet cannot be an MQTT fixed header. */
export class MalformedPacketError extends VigilError {
  constructor(message: string) {
    super('VIGIL_MQTT_MALFORMED', message);
  }
}

/** The gateway tried to publish on a broker that is closing or closed. */
export class BrokerClosedError extends VigilError {
  constructor(topic: string) {
    super('VIGIL_BROKER_CLOSED', `the broker is closed; nothing published on ${topic}`);
  }
}
