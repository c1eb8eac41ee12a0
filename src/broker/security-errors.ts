import { VigilError, type ErrorCode } from '../shared/index.js';
import type { AuthRefusal, ConnackRefusal } from './auth.js';

/**
 * Errors the guard hands aedes to end a connection. They are logged by the guard, with the reason,
 * when they happen: `logged` tells the client tracker not to log them a second time.
 */
abstract class GuardError extends VigilError {
  readonly logged = true;
  constructor(code: ErrorCode, message: string) {
    super(code, message);
  }
}

/** A CONNECT was refused; aedes sends CONNACK with `returnCode`, then closes [MQTT-3.2.2-5]. */
export class ConnectRefusedError extends GuardError {
  constructor(
    reason: AuthRefusal,
    readonly returnCode: ConnackRefusal,
  ) {
    super('VIGIL_MQTT_CONNECT_REFUSED', `connect refused: ${reason}`);
  }
}

/**
 * A CONNECT with a zero-length client id that asks for a persistent session: there is no id to keep the session
 * under, so the broker answers CONNACK 0x02 (identifier rejected) and closes the connection [MQTT-3.1.3-8].
 */
export class EmptyClientIdError extends GuardError {
  readonly returnCode = 2;
  constructor() {
    super('VIGIL_MQTT_CONNECT_REFUSED', 'connect refused: a zero-length client id needs a clean session');
  }
}

/** A device kept publishing over its rate and was disconnected. */
export class PublishRateError extends GuardError {
  constructor(perSecond: number, forMs: number) {
    super('VIGIL_MQTT_PUBLISH_RATE', `publishing over ${perSecond}/s for ${Math.round(forMs / 1000)} s`);
  }
}

/** A topic broke the protocol (ill-formed UTF-8, U+0000); MQTT requires closing the connection. */
export class MalformedTopicError extends GuardError {
  constructor(reason: string) {
    super('VIGIL_MQTT_MALFORMED_TOPIC', reason);
  }
}
