import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { MAX_BUNDLE_BYTES } from '../../src/sync/index.js';
import { jsonOf, rawExchange, requestText } from '../helpers/raw-http.js';
import { tempDir } from '../helpers/temp.js';

// Requests fetch would refuse to send, written to the real gateway's socket: each is refused with a 4xx
// and a JSON error, and the gateway goes on serving HTTP and MQTT.

interface FixedCase {
  name: string;
  request: string;
  status: number;
  code: string;
}

const CRASHERS = JSON.parse(
  readFileSync(new URL('../fixtures/http/crashers.json', import.meta.url), 'utf8'),
) as FixedCase[];

let gateway: Gateway;
let removeDir: () => Promise<void>;

beforeAll(async () => {
  const dir = await tempDir();
  removeDir = () => dir.remove();
  gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: dir.path,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      log: { level: 'silent' },
    }),
  );
});

afterAll(async () => {
  await gateway.stop();
  await removeDir();
});

const send = (request: string | Buffer) => rawExchange(gateway.http.port, request);

async function refused(request: string | Buffer, status: number, code: string): Promise<void> {
  const res = await send(request);
  expect(res.status, res.statusLine).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(jsonOf(res)).toMatchObject({ error: { code, message: expect.any(String) as string } });
}

async function stillServing(): Promise<void> {
  const health = await fetch(`http://127.0.0.1:${gateway.http.port}/healthz`);
  expect(health.status).toBe(200);
  expect(await health.json()).toMatchObject({ status: 'ok', gateway: 'gw1' });
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
    clientId: 'dev-1',
    reconnectPeriod: 0,
  });
  try {
    // QoS 1: the PUBACK says the gateway recorded it.
    await device.publishAsync('devices/dev-1/events/telemetry', '{"temp":21}', { qos: 1 });
  } finally {
    await device.endAsync();
  }
}

async function rejectedCount(reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gateway.http.port}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`vigil_http_requests_rejected_total{reason="${reason}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

describe('hostile HTTP requests to the gateway', () => {
  test.each(CRASHERS)('fixed case: $name', async (c) => {
    await refused(c.request, c.status, c.code);
    await stillServing();
  });

  test('malformed targets and percent-encodings', async () => {
    const before = await rejectedCount('bad-encoding');
    await refused(requestText('GET', '/api/profiles/%E0%A4%A'), 400, 'VIGIL_HTTP_BAD_ENCODING');
    await refused(requestText('GET', '/api/actions?limit=%ZZ'), 400, 'VIGIL_HTTP_BAD_ENCODING');
    await refused(requestText('GET', '/api/actions/log?actor=%E0%A4'), 400, 'VIGIL_HTTP_BAD_ENCODING');
    await refused(requestText('GET', '//'), 400, 'VIGIL_HTTP_BAD_TARGET');
    await refused(requestText('GET', '//api/x'), 400, 'VIGIL_HTTP_BAD_TARGET');
    await refused(requestText('GET', '/assets/../api/health'), 400, 'VIGIL_HTTP_BAD_TARGET');
    await refused(requestText('GET', 'api/health'), 400, 'VIGIL_HTTP_BAD_TARGET');
    await refused(requestText('OPTIONS', '*'), 400, 'VIGIL_HTTP_BAD_TARGET');
    await refused(requestText('GET', `/api/devices/${'d'.repeat(300)}`), 400, 'VIGIL_HTTP_BAD_TARGET');
    await refused(requestText('GET', `/api/profiles/${'x'.repeat(9_000)}`), 414, 'VIGIL_HTTP_BAD_TARGET');
    await refused(`GET /api/\u00e4 HTTP/1.1\r\nHost: x\r\n\r\n`, 400, 'VIGIL_HTTP_BAD_TARGET');
    await refused(requestText('GET', '/nowhere'), 404, 'VIGIL_HTTP_NO_ROUTE');
    expect(await rejectedCount('bad-encoding')).toBe(before + 3);
    // The absolute form is a valid target.
    expect((await send(requestText('GET', 'http://127.0.0.1/api/health'))).status).toBe(200);
    await stillServing();
  });

  test('absurd and unsupported methods', async () => {
    await refused(requestText('FOOBAR', '/api/health'), 400, 'VIGIL_HTTP_BAD_METHOD');
    await refused(requestText('G\u0001T', '/'), 400, 'VIGIL_HTTP_BAD_METHOD');
    await refused(requestText('PROPFIND', '/api/scenarios'), 405, 'VIGIL_HTTP_METHOD_NOT_ALLOWED');
    await refused(requestText('DELETE', '/metrics'), 405, 'VIGIL_HTTP_METHOD_NOT_ALLOWED');
    await refused(requestText('GET', '/api/profiles/import'), 405, 'VIGIL_HTTP_METHOD_NOT_ALLOWED');
    await refused(
      'CONNECT 127.0.0.1:1883 HTTP/1.1\r\nHost: 127.0.0.1:1883\r\n\r\n',
      405,
      'VIGIL_HTTP_METHOD_NOT_ALLOWED',
    );
    const allowed = await send(requestText('PATCH', '/api/devices/dev-1'));
    expect(allowed.headers['allow']).toBe('DELETE, GET');
    await stillServing();
  });

  test('bad headers', async () => {
    await refused(requestText('GET', '/api/health', ['Bad Header: x']), 400, 'VIGIL_HTTP_BAD_HEADER');
    await refused(requestText('GET', '/api/health', ['X-Thing: a\u0001b']), 400, 'VIGIL_HTTP_BAD_HEADER');
    await refused(
      requestText('GET', '/api/health', [`X-Big: ${'b'.repeat(20_000)}`]),
      431,
      'VIGIL_HTTP_BAD_HEADER',
    );
    await refused('GET /api/health HTTP/1.1\r\nConnection: close\r\n\r\n', 400, 'VIGIL_HTTP_BAD_HEADER');
    await refused(requestText('GET', '/api/health', ['Expect: a-pony']), 417, 'VIGIL_HTTP_BAD_HEADER');
    await refused(
      requestText(
        'POST',
        '/api/profiles/import',
        ['Content-Length: 5', 'Transfer-Encoding: chunked'],
        '0\r\n\r\n',
      ),
      400,
      'VIGIL_HTTP_BAD_HEADER',
    );
    await refused(
      requestText('PUT', '/api/devices/dev-1/credential', ['Content-Length: -1']),
      400,
      'VIGIL_HTTP_BAD_HEADER',
    );
    await stillServing();
  });

  test('oversized and malformed bodies', async () => {
    const put = (headers: string[], body: string) =>
      requestText('PUT', '/api/devices/dev-1/credential', headers, body);
    const json = (body: string) =>
      put(['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`], body);
    const before = await rejectedCount('body-too-large');
    // Declared too large: refused before a byte of the body is read.
    await refused(
      put(['Content-Type: application/json', 'Content-Length: 1000000000'], ''),
      413,
      'VIGIL_HTTP_BODY_TOO_LARGE',
    );
    // Streamed without a length, and too large once it has arrived.
    const big = 'x'.repeat(10_000);
    await refused(
      put(
        ['Content-Type: application/json', 'Transfer-Encoding: chunked'],
        `${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`,
      ),
      413,
      'VIGIL_HTTP_BODY_TOO_LARGE',
    );
    await refused(
      requestText('POST', '/api/rules/apply', [`Content-Length: ${MAX_BUNDLE_BYTES + 1}`]),
      413,
      'VIGIL_HTTP_BODY_TOO_LARGE',
    );
    expect(await rejectedCount('body-too-large')).toBe(before + 3);
    await refused(json('{"hash": '), 400, 'VIGIL_HTTP_BAD_JSON');
    await refused(json('[1, 2]'), 400, 'VIGIL_HTTP_BAD_JSON');
    await refused(json('{"hash": 1, "mode": "sideways"}'), 400, 'VIGIL_HTTP_BAD_BODY');
    await refused(
      // Not UTF-8.
      Buffer.from(put(['Content-Type: application/json', 'Content-Length: 2'], '\u00ff\u00fe'), 'latin1'),
      400,
      'VIGIL_HTTP_BAD_JSON',
    );
    await refused(
      put(['Content-Type: text/xml', 'Content-Length: 7'], '<a></a>'),
      415,
      'VIGIL_HTTP_BAD_CONTENT_TYPE',
    );
    await refused(
      requestText('POST', '/api/profiles/import', ['Content-Encoding: gzip', 'Content-Length: 4'], 'abcd'),
      415,
      'VIGIL_HTTP_BAD_CONTENT_TYPE',
    );
    await refused(
      requestText(
        'POST',
        '/api/profiles/import',
        ['Transfer-Encoding: chunked'],
        'zz\r\n{"id":"a"}\r\n0\r\n\r\n',
      ),
      400,
      'VIGIL_HTTP_BAD_BODY',
    );
    await stillServing();
  });

  test('streams cut off by the client end only their own response', async () => {
    // An NDJSON import whose client goes away mid-body, and a live stream closed at once.
    const { connect } = await import('node:net');
    const upload = connect(gateway.http.port, '127.0.0.1');
    upload.on('error', () => undefined);
    upload.write(
      requestText(
        'POST',
        '/api/profiles/import',
        ['Transfer-Encoding: chunked'],
        '10\r\n{"id":"cut-1"}\n\r\n',
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
    upload.resetAndDestroy();
    const live = await send(requestText('GET', '/api/live'));
    expect(live.status).toBe(200);
    expect(live.headers['content-type']).toMatch(/^text\/event-stream/);
    await expect.poll(() => gateway.store.profiles.get('cut-1'), { timeout: 5_000 }).toEqual({ id: 'cut-1' });
    await stillServing();
  });

  test('without the token, malformed requests are still refused as malformed, and the rest as unauthorized', async () => {
    const dir = await tempDir();
    const guarded = await startGateway(
      parseConfig({
        gatewayId: 'gw2',
        data: dir.path,
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
        http: { port: 0, token: 'a-token-of-sixteen-chars' },
        log: { level: 'silent' },
      }),
    );
    try {
      const port = guarded.http.port;
      const bad = await rawExchange(port, requestText('GET', '/api/profiles/%E0%A4%A'));
      expect(bad.status).toBe(400);
      const denied = await rawExchange(port, requestText('GET', '/api/health', ['Authorization: Basic %%%']));
      expect(denied.status).toBe(401);
      expect(denied.headers['www-authenticate']).toMatch(/^Basic/);
      expect(jsonOf(denied)).toMatchObject({ error: { code: 'VIGIL_HTTP_UNAUTHORIZED' } });
      const open = await rawExchange(port, requestText('GET', '/healthz'));
      expect(open.status).toBe(200);
    } finally {
      await guarded.stop();
      await dir.remove();
    }
  });
});
