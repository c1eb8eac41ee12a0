import { describe, expect, test } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/index.js';
import { apiAuthorizer, isLoopbackHost } from '../../src/api/index.js';

describe('security settings', () => {
  test('secure by default: no anonymous devices, limits on, HTTP on loopback without a token', () => {
    const config = parseConfig({});
    expect(config.mqtt).toMatchObject({
      allowAnonymous: false,
      maxConnections: 10_000,
      maxPendingPerAddress: 1_000,
      connectTimeout: 30_000,
      maxTopicBytes: 256,
      maxTopicLevels: 8,
      maxSubscriptions: 100,
      publishRate: { perSecond: 100, burst: 200, disconnectAfter: 10_000 },
      tls: { port: 8883 },
    });
    expect(config.mqtt.tls.cert).toBeUndefined();
    expect(config.http).toEqual({ host: '127.0.0.1', port: 8080 });
  });

  test('flags and VIGIL_* variables reach them, booleans and numbers converted', async () => {
    const config = await loadConfig({
      env: {
        VIGIL_ALLOW_ANONYMOUS: 'yes',
        VIGIL_TLS_PORT: '0',
        VIGIL_HTTP_TOKEN: 'x'.repeat(16),
        VIGIL_TLS_CRL: 'revoked.pem',
      },
      overrides: {
        'mqtt.tls.cert': 'c.pem',
        'mqtt.tls.key': 'k.pem',
        'mqtt.maxConnections': '5',
        'mqtt.maxPendingPerAddress': '7',
      },
    });
    expect(config.mqtt.allowAnonymous).toBe(true);
    expect(config.mqtt.tls).toMatchObject({ port: 0, cert: 'c.pem', key: 'k.pem', crl: 'revoked.pem' });
    expect(config.mqtt.maxConnections).toBe(5);
    expect(config.mqtt.maxPendingPerAddress).toBe(7);
    expect(parseConfig({ mqtt: { connectTimeout: '2m' } }).mqtt.connectTimeout).toBe(120_000);
    expect(config.http.token).toBe('x'.repeat(16));
    expect((await loadConfig({ env: { VIGIL_ALLOW_ANONYMOUS: '0' } })).mqtt.allowAnonymous).toBe(false);
  });

  test('bad values are refused with the key named', async () => {
    await expect(loadConfig({ env: { VIGIL_ALLOW_ANONYMOUS: 'sure' } })).rejects.toThrow(
      /VIGIL_ALLOW_ANONYMOUS: mqtt.allowAnonymous must be true or false/,
    );
    expect(() => parseConfig({ http: { token: 'short' } })).toThrow(
      /http.token: expected at least 16 characters/,
    );
    expect(() => parseConfig({ mqtt: { maxTopicLevels: 101 } })).toThrow(/mqtt.maxTopicLevels/);
    expect(() => parseConfig({ mqtt: { maxPendingPerAddress: 0 } })).toThrow(/mqtt.maxPendingPerAddress/);
    expect(() => parseConfig({ mqtt: { connectTimeout: '10ms' } })).toThrow(
      /mqtt.connectTimeout: expected at least 100ms/,
    );
    expect(() => parseConfig({ mqtt: { publishRate: { perSecond: -1 } } })).toThrow(
      /mqtt.publishRate.perSecond/,
    );
  });
});

describe('who may use the local HTTP API', () => {
  test.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['::1', true],
    ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['localhost', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.10', false],
    ['gateway.local', false],
  ])('%s is loopback: %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });

  test('loopback needs no token unless one is set; elsewhere one is required', () => {
    expect(apiAuthorizer({ host: '127.0.0.1' })).toBeUndefined();
    expect(() => apiAuthorizer({ host: '0.0.0.0' })).toThrow(/not a loopback address/);
    const check = apiAuthorizer({ host: '0.0.0.0', token: 'the-token-0123456789' });
    const req = (authorization?: string) =>
      ({ headers: authorization === undefined ? {} : { authorization } }) as Parameters<
        NonNullable<typeof check>
      >[0];
    expect(check?.(req())).toBe(false);
    expect(check?.(req('Bearer the-token-0123456789'))).toBe(true);
    expect(check?.(req('bearer the-token-0123456789'))).toBe(true);
    expect(check?.(req('Bearer the-token-012345678'))).toBe(false);
    expect(check?.(req(`Basic ${Buffer.from('me:the-token-0123456789').toString('base64')}`))).toBe(true);
    expect(check?.(req(`Basic ${Buffer.from('the-token-0123456789').toString('base64')}`))).toBe(false);
    expect(check?.(req('Token the-token-0123456789'))).toBe(false);
  });
});
