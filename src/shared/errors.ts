/**
 * Stable error codes; tests and operators match on these, never on messages. Each has a row in the
 * README's "Troubleshooting" table (a unit test holds the two together).
 */
export const ERROR_CODES = [
  'VIGIL_CONFIG',
  'VIGIL_TLS_FILE',
  'VIGIL_KEY_FILE',
  'VIGIL_RULE_INVALID',
  'VIGIL_BUNDLE_INPUT',
  'VIGIL_DATA_MISSING',
  'VIGIL_STORE_LOCKED',
  'VIGIL_STORE_IO',
  'VIGIL_DATA_FORMAT',
  'VIGIL_PROFILE_IMPORT',
  'VIGIL_REPLAY_RANGE',
  'VIGIL_PROFILES_MISSING',
  'VIGIL_GATEWAY_API',
  'VIGIL_DEVICE_ID',
  'VIGIL_DEVICE_EXISTS',
  'VIGIL_DEVICE_UNKNOWN',
  'VIGIL_CREDENTIAL_HASH',
  'VIGIL_DEVICE_SECRET',
  'VIGIL_BROKER_CLOSED',
  'VIGIL_MQTT_CONNECT_REFUSED',
  'VIGIL_MQTT_PUBLISH_RATE',
  'VIGIL_MQTT_PACKET_TOO_LARGE',
  'VIGIL_MQTT_MALFORMED',
  'VIGIL_MQTT_MALFORMED_TOPIC',
  'VIGIL_QUEUE_FULL',
  'VIGIL_NOT_FOUND',
  'VIGIL_HTTP_BAD_TARGET',
  'VIGIL_HTTP_BAD_ENCODING',
  'VIGIL_HTTP_BAD_METHOD',
  'VIGIL_HTTP_METHOD_NOT_ALLOWED',
  'VIGIL_HTTP_BAD_HEADER',
  'VIGIL_HTTP_BAD_REQUEST',
  'VIGIL_HTTP_BAD_QUERY',
  'VIGIL_HTTP_BAD_BODY',
  'VIGIL_HTTP_BAD_JSON',
  'VIGIL_HTTP_BAD_CONTENT_TYPE',
  'VIGIL_HTTP_BODY_TOO_LARGE',
  'VIGIL_HTTP_UNAUTHORIZED',
  'VIGIL_HTTP_NO_ROUTE',
  'VIGIL_HTTP_TIMEOUT',
  'VIGIL_HTTP_BUSY',
  'VIGIL_HTTP_INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface VigilErrorOptions {
  cause?: unknown;
  /** What the user should do about it; the command line prints it on the line after the message. */
  hint?: string | undefined;
}

/** The one error class Vigil throws on purpose; subclasses only fix the code (and carry what goes with it). */
export class VigilError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  constructor(code: ErrorCode, message: string, options: VigilErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.name = new.target.name;
  }
}

/** A configuration value is missing or out of range; start-up stops with this message. */
export class ConfigError extends VigilError {
  constructor(message: string, options?: VigilErrorOptions) {
    super('VIGIL_CONFIG', message, options);
  }
}

/** What to do when a listener cannot bind; `port` and `host` name the settings (and flags) that moved it. */
export function listenHint(err: unknown, port: string, host: string): string | undefined {
  switch ((err as { code?: unknown } | undefined)?.code) {
    case 'EADDRINUSE':
      return `another process listens there: stop it, or choose another ${port} (0 picks a free one)`;
    case 'EACCES':
      return `ports below 1024 need privileges: choose another ${port}`;
    case 'EADDRNOTAVAIL':
      return `the address is not one of this machine's: choose another ${host}`;
    default:
      return undefined;
  }
}

/** A bounded queue of inputs is full: the input is refused (a QoS 1 publish is not acknowledged, and sent again). */
export class QueueFullError extends VigilError {
  constructor(queue: string, bound: number) {
    super('VIGIL_QUEUE_FULL', `the ${queue} queue holds ${bound} inputs, its bound: input refused`, {
      hint: 'the gateway takes in more than it can record or apply; the device sends the publish again',
    });
  }
}

/** A certificate, key or CA file named in the configuration cannot be read or used. */
export class TlsFileError extends VigilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VIGIL_TLS_FILE', message, {
      ...options,
      hint: "check that the file exists, is readable by the gateway and is PEM, and that the key is the certificate's",
    });
  }
}

/** One problem in a rule file, located as `file:line:col` (the column when known), with a hint when there is one. */
export interface RuleProblem {
  file: string;
  line: number;
  col?: number;
  message: string;
  hint?: string;
}

/** `file:line:col: message`, on one line; the hint is not included. */
export function formatProblem(p: RuleProblem): string {
  return `${p.file}:${p.line}${p.col !== undefined ? `:${p.col}` : ''}: ${p.message}`;
}

/** Rule files failed to load; carries every problem found, not only the first. */
export class RuleError extends VigilError {
  readonly problems: readonly RuleProblem[];
  constructor(problems: readonly RuleProblem[]) {
    // One problem with a hint of its own (a directory that cannot be read) is told what to do about it.
    const own = problems.length === 1 ? problems[0]?.hint : undefined;
    super('VIGIL_RULE_INVALID', problems.map(formatProblem).join('\n'), {
      hint: own ?? 'fix the lines listed; `vigil rules check DIR` confirms that a rules directory loads',
    });
    this.problems = problems;
  }
}

/** Another process holds the LevelDB data directory. */
export class StoreLockedError extends VigilError {
  constructor(dir: string, options?: { cause?: unknown }) {
    super('VIGIL_STORE_LOCKED', `data directory ${dir} is in use by another process`, {
      ...options,
      hint: 'stop the process that holds it (another gateway or vigil command), or give this one another directory with --data',
    });
  }
}

/** A storage read or write failed (disk full, I/O error). */
export class StoreIoError extends VigilError {
  constructor(message: string, options?: VigilErrorOptions) {
    super('VIGIL_STORE_IO', message, options);
  }
}
