import { MessageChannel, Worker } from 'node:worker_threads';
import { afterEach, expect, test } from 'vitest';
import { encodeRecord } from '../../src/runtime/index.js';
import { Crossing } from '../../src/threads/index.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function channel(batchBytes?: number): { a: Crossing; b: Crossing } {
  const { port1, port2 } = new MessageChannel();
  const opts = batchBytes === undefined ? {} : { batchBytes };
  const a = new Crossing(port1, opts);
  const b = new Crossing(port2, opts);
  cleanups.push(() => {
    a.close();
    b.close();
    port1.close();
    port2.close();
  });
  return { a, b };
}

function waitUntil(predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (predicate()) resolve();
      else if (Date.now() > deadline) reject(new Error('condition not met in time'));
      else setTimeout(check, 5);
    };
    check();
  });
}

test('records sent in one turn cross in order and intact, in a few batches rather than one message each', async () => {
  const { a, b } = channel(16 * 1024);
  const got: string[] = [];
  const decoder = new TextDecoder();
  b.onRecords((batch, start, end) => got.push(decoder.decode(batch.subarray(start, end))));
  const sent = Array.from({ length: 10_000 }, (_, i) => `r${i}-`.padEnd(i % 97, 'x'));
  const encoder = new TextEncoder();
  for (const text of sent) a.send(encoder.encode(text));
  expect(a.stats.batches).toBeGreaterThan(0); // full buffers went at once
  await waitUntil(() => got.length === sent.length);
  expect(got).toEqual(sent);
  expect(a.stats.records).toBe(10_000);
  // 10,000 records of 4-100 bytes fill about 40 buffers of 16 KiB: far fewer messages than records.
  expect(a.stats.batches).toBeLessThan(60);
});

test('buffers come back and are written again: turn after turn, no new buffer is allocated', async () => {
  const { a, b } = channel(4 * 1024);
  let received = 0;
  b.onRecords(() => received++);
  const record = new Uint8Array(100).fill(7);
  for (let turn = 0; turn < 50; turn++) {
    for (let i = 0; i < 30; i++) a.send(record);
    await waitUntil(() => received === (turn + 1) * 30);
    await new Promise((r) => setTimeout(r, 1));
  }
  expect(a.stats.batches).toBe(50);
  // The first buffer and one written while the first was away; after that, only returned ones.
  expect(a.stats.allocated).toBeLessThanOrEqual(3);
});

test('a small batch crosses as a copy the receiver keeps: its buffer is written again at once', async () => {
  const { a, b } = channel(4 * 1024);
  const got: number[] = [];
  b.onRecords((batch, start, end) => got.push(end - start, batch[start] as number));
  for (let turn = 0; turn < 20; turn++) {
    a.send(new Uint8Array(10).fill(turn));
    a.send(new Uint8Array(30).fill(turn + 100));
    await waitUntil(() => got.length === (turn + 1) * 4);
  }
  expect(got.slice(-4)).toEqual([10, 19, 30, 119]);
  expect(a.stats.batches).toBe(20);
  expect(a.stats.copied).toBe(20);
  // Nothing handed back to wait for: the one buffer serves every turn.
  expect(a.stats.allocated).toBe(1);
});

test('a record larger than a batch buffer crosses whole, between the records around it', async () => {
  const { a, b } = channel(1024);
  const got: number[] = [];
  b.onRecords((batch, start, end) => got.push(end - start, batch[start] as number));
  a.send(new Uint8Array(10).fill(1));
  a.send(new Uint8Array(5_000).fill(2));
  a.send(new Uint8Array(20).fill(3));
  await waitUntil(() => got.length === 6);
  expect(got).toEqual([10, 1, 5_000, 2, 20, 3]);
});

test('events cross to a worker as journal records and its commands come back, in order', async () => {
  const worker = new Worker(new URL('./threads-crossing-worker.ts', import.meta.url), {
    execArgv: ['--import', 'tsx'],
  });
  cleanups.push(() => worker.terminate());
  const crossing = new Crossing(worker);
  cleanups.push(() => crossing.close());
  const commands: string[] = [];
  const decoder = new TextDecoder();
  crossing.onRecords((batch, start, end) => commands.push(decoder.decode(batch.subarray(start, end))));
  const expected: string[] = [];
  for (let i = 0; i < 2_000; i++) {
    const temp = 20 + (i % 15);
    const event = {
      actor: `dev-${i % 7}`,
      type: 'telemetry',
      at: 1_000 + i,
      data: { temp },
      source: 'device' as const,
    };
    if (temp > 30) expected.push(`${event.actor}:${temp}`);
    crossing.send(encodeRecord({ kind: 'event', event }));
  }
  await waitUntil(() => commands.length === expected.length, 20_000);
  expect(commands).toEqual(expected);
  expect(crossing.stats.batches).toBeLessThan(10);
});
