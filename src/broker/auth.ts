import { isDeviceId } from '../shared/device-id.js';
import type { Identity } from './acl.js';

/** Where device secrets are checked (the credential store); the broker never sees a hash. */
export interface CredentialCheck {
  verify(deviceId: string, secret: Buffer): Promise<'ok' | 'unknown-device' | 'wrong-secret'>;
}

/** Why a CONNECT was refused; the label of `vigil_auth_refusals_total`. */
export type AuthRefusal =
  | 'no-credentials'
  | 'invalid-device-id'
  | 'client-id-mismatch'
  | 'unknown-device'
  | 'wrong-secret'
  | 'certificate'
  | 'unavailable';

/** What the CONNECT carried, and how the connection came in. */
export interface ConnectAttempt {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  /**
   * The common name of a client certificate the TLS listener verified against its CA; undefined on
   * plain TCP and on TLS without a CA.
   */
  certificateName: string | undefined;
  /** The connection came through a listener that requires client certificates. */
  certificateRequired: boolean;
}

/**
 * CONNACK return codes of MQTT 3.1.1 [MQTT-3.2.2.3]: 2 identifier rejected, 3 server unavailable,
 * 4 bad user name or password, 5 not authorized.
 */
export type ConnackRefusal = 2 | 3 | 4 | 5;

export type AuthResult =
  | { ok: true; identity: Identity; method: 'secret' | 'certificate' | 'anonymous' }
  | { ok: false; refusal: AuthRefusal; returnCode: ConnackRefusal; detail: string };

/**
 * Decides a CONNECT: user name = client id = device id, with its secret; or, on a listener with a CA,
 * the certificate's common name is the device id and the client id must be it too. Without
 * credentials only `allowAnonymous` lets a client in. Unknown device and wrong secret look the same to
 * the client (return code 4), and differ only in the log and the counters.
 */
export async function authenticateConnect(
  attempt: ConnectAttempt,
  opts: { allowAnonymous: boolean; credentials: CredentialCheck },
): Promise<AuthResult> {
  if (attempt.certificateRequired) return byCertificate(attempt);
  const { clientId, username, password } = attempt;
  if (username === undefined && password === undefined) {
    if (opts.allowAnonymous) return { ok: true, identity: { kind: 'anonymous' }, method: 'anonymous' };
    return refuse('no-credentials', 5, 'no user name and secret, and anonymous clients are not allowed');
  }
  if (username === undefined || password === undefined) {
    return refuse('no-credentials', 4, 'a user name needs a secret as the password');
  }
  if (!isDeviceId(username)) return refuse('invalid-device-id', 4, 'the user name is not a device id');
  if (clientId !== username) {
    return refuse('client-id-mismatch', 2, 'the client id must be the device id, as the user name is');
  }
  let verdict: Awaited<ReturnType<CredentialCheck['verify']>>;
  try {
    verdict = await opts.credentials.verify(username, password);
  } catch (err) {
    return refuse('unavailable', 3, `the credentials could not be read: ${(err as Error).message}`);
  }
  switch (verdict) {
    case 'ok':
      return { ok: true, identity: { kind: 'device', deviceId: username }, method: 'secret' };
    case 'unknown-device':
      return refuse('unknown-device', 4, 'no credential for this device');
    case 'wrong-secret':
      return refuse('wrong-secret', 4, 'the secret does not match');
  }
}

function byCertificate(attempt: ConnectAttempt): AuthResult {
  const name = attempt.certificateName;
  if (name === undefined) return refuse('certificate', 5, 'no verified client certificate');
  if (!isDeviceId(name))
    return refuse('invalid-device-id', 5, "the certificate's common name is not a device id");
  if (attempt.clientId !== name) {
    return refuse('client-id-mismatch', 2, "the client id must be the certificate's common name");
  }
  if (attempt.username !== undefined && attempt.username !== name) {
    return refuse(
      'client-id-mismatch',
      4,
      "the user name, when given, must be the certificate's common name",
    );
  }
  return { ok: true, identity: { kind: 'device', deviceId: name }, method: 'certificate' };
}

function refuse(refusal: AuthRefusal, returnCode: ConnackRefusal, detail: string): AuthResult {
  return { ok: false, refusal, returnCode, detail };
}
