import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { afterEach, expect, test } from 'vitest';
import { batchWrites } from '../../src/broker/write-batching.js';

const open: Array<() => void> = [];
afterEach(() => {
  for (const close of open.splice(0).reverse()) close();
});

/** A connected pair on 127.0.0.1: the server's end batched as the broker batches it, and what the other end reads. */
async function pair(): Promise<{ socket: Socket; received: () => Buffer }> {
  const server: Server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  open.push(() => server.close());
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const { port } = server.address() as { port: number };
  const peer = createConnection({ port, host: '127.0.0.1' });
  const chunks: Buffer[] = [];
  peer.on('data', (c: Buffer) => chunks.push(c));
  open.push(() => peer.destroy());
  const [socket] = await accepted;
  socket.setNoDelay(true);
  batchWrites(socket);
  open.push(() => socket.destroy());
  return { socket, received: () => Buffer.concat(chunks) };
}

async function receivedAtLeast(received: () => Buffer, bytes: number): Promise<Buffer> {
  for (let i = 0; i < 500 && received().length < bytes; i++) await new Promise((r) => setTimeout(r, 2));
  return received();
}

const packets = fc.oneof(
  fc.record({ cmd: fc.constant('puback' as const), messageId: fc.integer({ min: 0, max: 0xffff }) }),
  fc.record({
    cmd: fc.constant('publish' as const),
    topic: fc.constantFrom('devices/d1/commands/reboot', 'a'),
    payload: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    qos: fc.constantFrom(0 as const, 1 as const),
    messageId: fc.integer({ min: 1, max: 0xffff }),
    dup: fc.constant(false),
    retain: fc.constant(false),
  }),
  fc.constant({ cmd: 'pingresp' as const }),
);

test('PUBACKs written to a batched socket arrive as mqtt-packet writes them, in order with everything else', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(packets, { maxLength: 12 }), { minLength: 1, maxLength: 5 }),
      async (turns) => {
        const { socket, received } = await pair();
        const expected: Buffer[] = [];
        for (const batch of turns) {
          for (const p of batch) {
            // As aedes writes: no options.
            mqttPacket.writeToStream(p, socket);
            expected.push(mqttPacket.generate(p));
          }
          await turn();
        }
        const want = Buffer.concat(expected);
        const got = await receivedAtLeast(received, want.length);
        expect(got.equals(want)).toBe(true);
        socket.destroy();
      },
    ),
    { numRuns: 40 },
  );
});

test('a PUBACK to a stream that is not batched, or with options, is written by mqtt-packet itself', async () => {
  const { socket, received } = await pair();
  const chunks: Buffer[] = [];
  const plain = new (await import('node:stream')).Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  mqttPacket.writeToStream({ cmd: 'puback', messageId: 258 }, plain);
  mqttPacket.writeToStream({ cmd: 'puback', messageId: 7, reasonCode: 0x10 }, socket, { protocolVersion: 5 });
  await turn();
  expect(Buffer.concat(chunks)).toEqual(Buffer.from([0x40, 0x02, 0x01, 0x02]));
  const want = mqttPacket.generate({ cmd: 'puback', messageId: 7, reasonCode: 0x10 }, { protocolVersion: 5 });
  expect((await receivedAtLeast(received, want.length)).equals(want)).toBe(true);
});

test('nothing is written to a socket destroyed before the end of its turn', async () => {
  const { socket, received } = await pair();
  mqttPacket.writeToStream({ cmd: 'puback', messageId: 1 }, socket);
  socket.destroy();
  await turn();
  await new Promise((r) => setTimeout(r, 20));
  expect(received()).toHaveLength(0);
  // A PUBACK after the socket is gone is left to mqtt-packet, which fails it on the stream.
  socket.on('error', () => undefined);
  mqttPacket.writeToStream({ cmd: 'puback', messageId: 2 }, socket);
  await turn();
  expect(received()).toHaveLength(0);
});
