import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { HttpApi, HttpMetrics } from '../../src/api/index.js';
import { StoreIoError } from '../../src/shared/index.js';
import { jsonOf, rawExchange, requestText } from '../helpers/raw-http.js';

// The server's error boundary with handlers that fail in every way a handler can: each failure answers
// that request only (500 with a JSON error, or its connection cut once the answer has started), is counted
// by route, and the next request is served.

let api: HttpApi;
let registry: Registry;
let port: number;
const logged: Array<{ level: number; msg: string; peer?: string; route?: string }> = [];

beforeEach(async () => {
  registry = new Registry();
  logged.length = 0;
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => void logged.push(JSON.parse(line) as (typeof logged)[number]) },
  );
  api = new HttpApi({ logger, metrics: new HttpMetrics(registry) });
  api
    .route('GET', '/ok', ({ res }) => void res.end('fine'))
    .route('GET', '/throws', () => {
      throw new Error('a bug');
    })
    .route('GET', '/rejects', async () => {
      await Promise.resolve();
      throw new StoreIoError('reading the profiles failed: EIO');
    })
    .route('GET', '/throws-a-string', () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what a careless handler might do
      throw 'not an error';
    })
    .route('GET', '/forgets', () => undefined)
    .route('GET', '/stream-then-throws', async ({ res }) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: hello\ndata: {}\n\n');
      await new Promise((r) => setTimeout(r, 20));
      throw new Error('failed mid-stream');
    });
  ({ port } = await api.listen('127.0.0.1', 0));
});

afterEach(() => api.close());

async function handlerErrors(route: string): Promise<number> {
  const metric = await registry.getSingleMetric('vigil_http_handler_errors_total')?.get();
  return metric?.values.find((v) => v.labels['route'] === route)?.value ?? 0;
}

test('a handler that throws, rejects or throws a non-error answers 500 with a JSON error', async () => {
  for (const [path, code, message] of [
    ['/throws', 'VIGIL_HTTP_INTERNAL', 'internal error; see the gateway log'],
    ['/rejects', 'VIGIL_STORE_IO', 'reading the profiles failed: EIO'],
    ['/throws-a-string', 'VIGIL_HTTP_INTERNAL', 'internal error; see the gateway log'],
    ['/forgets', 'VIGIL_HTTP_INTERNAL', 'internal error; see the gateway log'],
  ] as const) {
    const res = await rawExchange(port, requestText('GET', path));
    expect(res.status, path).toBe(500);
    expect(jsonOf(res), path).toEqual({ error: { code, message } });
    expect(await handlerErrors(path), path).toBe(1);
    expect((await rawExchange(port, requestText('GET', '/ok'))).body.toString()).toBe('fine');
  }
  const failures = logged.filter((l) => l.msg === 'http handler failed');
  expect(failures.map((l) => l.route)).toEqual(['/throws', '/rejects', '/throws-a-string', '/forgets']);
  expect(failures.every((l) => l.peer === '127.0.0.1')).toBe(true);
});

test('a handler that fails after its answer started has that connection cut, and only that one', async () => {
  const res = await fetch(`http://127.0.0.1:${port}/stream-then-throws`);
  expect(res.status).toBe(200);
  await expect(res.text()).rejects.toThrow();
  expect(await handlerErrors('/stream-then-throws')).toBe(1);
  expect(await (await fetch(`http://127.0.0.1:${port}/ok`)).text()).toBe('fine');
});
