import fc from 'fast-check';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { jsonOf, rawExchange } from '../helpers/raw-http.js';
import { tempDir } from '../helpers/temp.js';

// Property: whatever request line, headers and body a client sends, the real gateway answers with a
// well-formed HTTP response below 500 (a JSON error for every 4xx), and goes on serving. A request that
// breaks this is kept in test/fixtures/http/crashers.json, which http-hostile-requests.test.ts replays.

// Fixed, so that a failure is repeatable; VIGIL_HTTP_FUZZ_SEED and VIGIL_HTTP_FUZZ_RUNS explore further.
const SEED = Number(process.env['VIGIL_HTTP_FUZZ_SEED'] ?? 20_260_611);
const RUNS = Number(process.env['VIGIL_HTTP_FUZZ_RUNS'] ?? 1_500);

const TEMPLATES = [
  '/',
  '/assets/:p',
  '/healthz',
  '/metrics',
  '/api/scenarios',
  '/api/scenarios/:p',
  '/api/devices',
  '/api/devices/:p',
  '/api/devices/:p/credential',
  '/api/actions',
  '/api/actions/log',
  '/api/health',
  '/api/profiles/:p',
  '/api/profiles/import',
  '/api/rules',
  '/api/rules/apply',
];

const brokenEscape = fc.constantFrom(
  '%',
  '%A',
  '%ZZ',
  '%E0%A4%A',
  '%C0%AF',
  '%FF',
  '%ED%A0%80',
  '%00',
  '%%',
  '%2',
);
// Mostly plausible, so that the routes are reached; often hostile, so that the boundary is.
const segment = fc.oneof(
  { arbitrary: fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/), weight: 4 },
  { arbitrary: fc.constantFrom('dev-1', 'overheat', 'index.html', 'dashboard.js', 'import'), weight: 3 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }).map(encodeURIComponent), weight: 2 },
  { arbitrary: brokenEscape, weight: 1 },
  { arbitrary: fc.constantFrom('..', '.', ''), weight: 1 },
  { arbitrary: fc.integer({ min: 200, max: 9_000 }).map((n) => 'a'.repeat(n)), weight: 1 },
  // Raw bytes the parser must refuse: non-ASCII, controls, spaces.
  { arbitrary: fc.constantFrom('\u00e4', '\u0001', ' x', '\u007f'), weight: 1 },
);
const path = fc
  .tuple(
    fc.constantFrom(...TEMPLATES),
    fc.array(segment, { minLength: 2, maxLength: 2 }),
    fc.constantFrom('', '/', '//', '/..'),
  )
  .map(([template, [a = '', b = ''], prefix]) => {
    let n = 0;
    const filled = template.replace(/:p/g, () => (n++ === 0 ? a : b));
    return prefix === '' ? filled : `${prefix}${filled.slice(1)}`;
  });
const query = fc.oneof(
  fc.constant(''),
  fc
    .array(
      fc.tuple(
        fc.constantFrom('limit', 'actor', 'suppressed', 'x'),
        fc.oneof(segment, fc.constantFrom('1', '0', '-1', 'true')),
      ),
      {
        maxLength: 3,
      },
    )
    .map((pairs) => (pairs.length === 0 ? '?' : `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`)),
);
const method = fc.oneof(
  { arbitrary: fc.constantFrom('GET', 'GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE'), weight: 12 },
  { arbitrary: fc.constantFrom('HEAD', 'OPTIONS', 'PATCH', 'PROPFIND', 'TRACE'), weight: 1 },
  { arbitrary: fc.stringMatching(/^[A-Z]{1,10}$/), weight: 1 },
  { arbitrary: fc.constantFrom('get', 'G T', '\u0000'), weight: 1 },
);
const header = fc.oneof(
  {
    arbitrary: fc.constantFrom(
      'Content-Type: application/json',
      'Content-Type: application/json; charset=utf-8',
      'Content-Type: application/x-ndjson',
      'Accept: */*',
      'User-Agent: fuzz',
    ),
    weight: 6,
  },
  fc.constantFrom(
    'Content-Type: text/plain',
    'Content-Encoding: gzip',
    'Authorization: Bearer nope',
    'Authorization: Basic %%%',
    'Expect: 100-continue',
    'Expect: something',
    'Accept: */*',
    'If-None-Match: "x"',
    'Upgrade: websocket',
    'Content-Length: abc',
    'Content-Length: -5',
    'Transfer-Encoding: gzip',
    'Bad Header: x',
    ': empty-name',
  ),
  fc
    .tuple(fc.stringMatching(/^[A-Za-z-]{1,20}$/), fc.stringMatching(/^[\x20-\x7e]{0,40}$/))
    .map(([k, v]) => `X-${k}: ${v}`),
  { arbitrary: fc.integer({ min: 9_000, max: 20_000 }).map((n) => `X-Long: ${'v'.repeat(n)}`), weight: 1 },
);
const body = fc.oneof(
  fc.constant(''),
  fc.json().map((j) => Buffer.from(j)),
  fc.constantFrom('{"hash": "hmac-sha256$x$y", "mode": "add"}', '{"id":"fz-1","site":"n"}\n{"id":', '{bad'),
  fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
  fc.integer({ min: 5_000, max: 70_000 }).map((n) => 'x'.repeat(n)),
);
const framing = fc.constantFrom('length', 'length', 'length', 'length', 'chunked', 'broken-chunks', 'none');

const request = fc.record({
  method,
  path,
  query,
  headers: fc.array(header, { maxLength: 3 }),
  body,
  framing,
});
type Request = typeof request extends fc.Arbitrary<infer T> ? T : never;

function render(r: Request): Buffer {
  const bytes = typeof r.body === 'string' ? Buffer.from(r.body, 'latin1') : r.body;
  const lines = [
    `${r.method} ${r.path}${r.query} HTTP/1.1`,
    'Host: 127.0.0.1',
    ...r.headers,
    'Connection: close',
  ];
  let payload = Buffer.alloc(0);
  if (r.framing === 'length') {
    lines.push(`Content-Length: ${bytes.length}`);
    payload = bytes;
  } else if (r.framing === 'chunked' || r.framing === 'broken-chunks') {
    lines.push('Transfer-Encoding: chunked');
    const size = r.framing === 'chunked' ? bytes.length.toString(16) : 'zz';
    payload = Buffer.concat([
      Buffer.from(`${size}\r\n`),
      bytes,
      Buffer.from(bytes.length > 0 ? '\r\n0\r\n\r\n' : '\r\n'),
    ]);
  }
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
}

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

test('random requests always get a well-formed answer below 500, and the gateway stays up', async () => {
  console.log(`http fuzz: seed ${SEED}, ${RUNS} runs`);
  let runs = 0;
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(request, async (r) => {
      runs += 1;
      const raw = render(r);
      const res = await rawExchange(gateway.http.port, raw, { head: r.method === 'HEAD' });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      expect(res.statusLine).toMatch(/^HTTP\/1\.1 \d{3} /);
      expect(res.status).toBeLessThan(500);
      if (res.status === 422) {
        // A rules bundle refused: the answer is its RulesStatus, as for the CLI.
        expect(jsonOf(res)).toMatchObject({ status: 'rejected' });
      } else if (res.status >= 400 && r.method !== 'HEAD') {
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        expect(jsonOf(res)).toMatchObject({
          error: { code: expect.stringMatching(/^VIGIL_/) as string, message: expect.any(String) as string },
        });
      }
    }),
    { seed: SEED, numRuns: RUNS, interruptAfterTimeLimit: 15_000, endOnFailure: true },
  );
  const byStatus = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`);
  console.log(`http fuzz: ${runs} requests answered (${byStatus.join(', ')})`);
  expect(runs).toBeGreaterThan(50);

  const health = await fetch(`http://127.0.0.1:${gateway.http.port}/healthz`);
  expect(health.status).toBe(200);
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
    clientId: 'dev-1',
    reconnectPeriod: 0,
  });
  await device.publishAsync('devices/dev-1/events/telemetry', '{"temp":21}', { qos: 1 });
  await device.endAsync();
}, 30_000);
