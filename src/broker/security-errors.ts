import type { AuthRefusal, ConnackRefusal } from './auth.js';

/**
 * Errors the guard hands aedes to end a connection. They are logged by the guard, with the reason,
 * when they happen: `logged` tells the client tracker not to log them a second time.
 */
abstract class GuardError extends Error {
  readonly logged = true;
}

/** A CONNECT was refused; aedes sends CONNACK with `returnCode`, then closes [MQTT-3.2.2-5]. */
export class ConnectRefusedError extends GuardError {
  readonly code = 'VIGIL_MQTT_CONNECT_REFUSED';
  constructor(
    readonly reason: AuthRefusal,
    readonly returnCode: ConnackRefusal,
  ) {
    super(`connect refused: ${reason}`);
    this.name = 'ConnectRefusedError';
  }
}

/** A device kept publishing over its rate and was disconnected. */
export class PublishRateError extends GuardError {
  readonly code = 'VIGIL_MQTT_PUBLISH_RATE';
  constructor(perSecond: number, forMs: number) {
    super(`publishing over ${perSecond}/s for ${Math.round(forMs / 1000)} s`);
    this.name = 'PublishRateError';
  }
}

/** A topic broke the protocol (ill-formed UTF-8, U+0000); MQTT requires closing the connection. */
export class MalformedTopicError extends GuardError {
  readonly code = 'VIGIL_MQTT_MALFORMED_TOPIC';
  constructor(reason: string) {
    super(reason);
    this.name = 'MalformedTopicError';
  }
}
