import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { GatewayApiError, GatewayClient } from '../../src/api/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { startProfileApi, type ApiServer } from './profiles-harness.js';

let dir: string;
let store: Store;
let api: ApiServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-profile-api-'));
  store = await openStore(dir);
});

afterEach(async () => {
  await api?.close();
  api = undefined;
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const gateway = (url: string, token?: string) => ({
  pid: process.pid,
  http: url,
  ...(token ? { token } : {}),
});

async function raw(url: string, method: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { method });
  return { status: res.status, body: await res.json() };
}

describe('profile API', () => {
  test('an NDJSON body streamed to the import route lands in the store and is summarised', async () => {
    api = await startProfileApi(store);
    const lines = Array.from({ length: 20_000 }, (_, i) =>
      JSON.stringify({ id: `dev-${i}`, maxTemp: i % 90 }),
    );
    lines.splice(5, 0, '{"id": broken');
    let sent = 0;
    const summary = await new GatewayClient(gateway(api.url)).importProfiles(
      Readable.from([lines.join('\n')]),
      {
        onBytes: (n) => (sent = n),
      },
    );
    expect(summary).toMatchObject({ imported: 20_000, rejected: 1 });
    expect(summary.errors).toHaveLength(1);
    expect(summary.errors[0]?.line).toBe(6);
    expect(sent).toBe(Buffer.byteLength(lines.join('\n')));
    await expect(store.profiles.get('dev-19999')).resolves.toEqual({ id: 'dev-19999', maxTemp: 19_999 % 90 });
  });

  test('a profile with a field named like a secret is refused by line and never stored', async () => {
    api = await startProfileApi(store);
    const lines = ['{"id":"dev-1","maxTemp":50}', '{"id":"dev-2","mqtt":{"password":"hunter2"}}'];
    const summary = await new GatewayClient(gateway(api.url)).importProfiles(
      Readable.from([lines.join('\n')]),
    );
    expect(summary).toMatchObject({ imported: 1, rejected: 1 });
    expect(summary.errors[0]).toMatchObject({ line: 2 });
    expect(summary.errors[0]?.message).toContain('field "mqtt.password" is named like a secret');
    await expect(store.profiles.get('dev-2')).resolves.toBeUndefined();
  });

  test('reads one profile by id, and says when there is none', async () => {
    api = await startProfileApi(store);
    await store.profiles.put('dev/1 ä', { id: 'dev/1 ä', site: 'north' });
    await expect(new GatewayClient(gateway(api.url)).profile('dev/1 ä')).resolves.toEqual({
      id: 'dev/1 ä',
      site: 'north',
    });
    await expect(new GatewayClient(gateway(api.url)).profile('nobody')).resolves.toBeUndefined();
    await expect(raw(`${api.url}/api/profiles/nobody`, 'GET')).resolves.toEqual({
      status: 404,
      body: { error: { code: 'VIGIL_NOT_FOUND', message: 'no profile with id "nobody"' } },
    });
  });

  test('the import route takes POST only', async () => {
    api = await startProfileApi(store);
    const answer = await raw(`${api.url}/api/profiles/import`, 'GET');
    expect(answer.status).toBe(405);
  });

  test('sends the token from gateway.json, and says so when the gateway refuses it', async () => {
    api = await startProfileApi(store, { token: 's3cret' });
    await store.profiles.put('dev-1', { v: 1 });
    await expect(new GatewayClient(gateway(api.url, 's3cret')).profile('dev-1')).resolves.toEqual({ v: 1 });
    const err = await new GatewayClient(gateway(api.url, 'wrong')).profile('dev-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayApiError);
    expect((err as Error).message).toMatch(/401.*token/);
  });

  test('a gateway that does not answer gives GatewayApiError naming it', async () => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as AddressInfo;
    probe.close();
    await once(probe, 'close');
    const err = await new GatewayClient(gateway(`http://127.0.0.1:${port}`))
      .profile('x')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayApiError);
    expect((err as Error).message).toContain(
      `cannot reach the gateway (pid ${process.pid}) at http://127.0.0.1:${port}`,
    );
  });

  test('an upload that breaks off keeps the server serving, and keeps what arrived', async () => {
    api = await startProfileApi(store);
    const url = new URL('/api/profiles/import', api.url);
    const req = request(url, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } });
    req.on('error', () => undefined);
    req.write('{"id":"early-1"}\n{"id":"early-2"}\n');
    await new Promise((resolve) => setTimeout(resolve, 100));
    req.destroy();
    // The server notices the break and answers no one; the next request still works.
    await expect.poll(() => store.profiles.get('early-2'), { timeout: 5_000 }).toEqual({ id: 'early-2' });
    const summary = await new GatewayClient(gateway(api.url)).importProfiles(
      Readable.from(['{"id":"later"}\n']),
    );
    expect(summary.imported).toBe(1);
  });
});
