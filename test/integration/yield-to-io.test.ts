import net from 'node:net';
import { generate } from 'mqtt-packet';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { startBroker, type Broker } from '../../src/broker/index.js';
import { yieldToIo } from '../../src/shared/index.js';

// Long work on the broker's thread (a replay, a checkpoint's encoding) runs in batches and yields between them.
// libuv accepts one connection a turn of the loop, so a storm of devices gets in only if a yield lasts more than
// one turn while connections keep coming.

const open: Array<() => unknown> = [];

afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close();
});

async function broker(): Promise<{ broker: Broker; connected: () => number }> {
  let connected = 0;
  const started = await startBroker({
    host: '127.0.0.1',
    port: 0,
    maxPacketBytes: 64 * 1024,
    logger: pino({ level: 'silent' }),
    hooks: {
      onPublish: () => undefined,
      onConnected: () => void connected++,
      onDisconnected: () => undefined,
    },
  });
  open.push(() => started.close());
  return { broker: started, connected: () => connected };
}

/** `n` devices connecting at once: every TCP connect and its CONNECT are sent before the loop turns again. */
function storm(port: number, n: number): { acknowledged: () => number } {
  let acknowledged = 0;
  for (let i = 0; i < n; i++) {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(
      generate({ cmd: 'connect', clientId: `dev-${i}`, protocolVersion: 4, clean: true, keepalive: 60 }),
    );
    // The CONNACK is the first packet back: 0x20.
    socket.once('data', (chunk) => void (chunk[0] === 0x20 && acknowledged++));
    open.push(() => socket.destroy());
  }
  return { acknowledged: () => acknowledged };
}

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** Batches of `batchMs` of work, each followed by `yieldToIo`, until `done`; returns how many batches ran. */
async function batchesUntil(done: () => boolean, batchMs: number, steps?: () => number): Promise<number> {
  let batches = 0;
  while (!done()) {
    if (batches >= 1_000) throw new Error('still not done after 1,000 batches');
    busy(batchMs);
    batches++;
    await yieldToIo(batchMs, steps);
  }
  return batches;
}

describe('yieldToIo', () => {
  test('a storm of devices connects within a few batches of long work that yields with the broker’s steps', async () => {
    const { broker: b, connected } = await broker();
    const devices = 300;
    const { acknowledged } = storm(b.address.port, devices);
    const batches = await batchesUntil(
      () => connected() === devices && acknowledged() === devices,
      10,
      () => b.connectionSteps ?? 0,
    );
    // One connection a batch would take 300 batches; a yield that goes on while connections progress takes a few.
    expect(batches).toBeLessThanOrEqual(20);
    expect(acknowledged()).toBe(devices);
  });

  test('without connections coming in, a yield is one turn of the loop', async () => {
    let asked = 0;
    let turns = 0;
    let counting = true;
    const count = (): void => {
      turns++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    await yieldToIo(50, () => {
      asked++;
      return 7;
    });
    counting = false;
    // Asked before the turn and after it; the steps did not move, so no second turn.
    expect(asked).toBe(2);
    expect(turns).toBeLessThanOrEqual(2);
  });

  test('while the steps move, it turns the loop again, for at most the share of the work it was given', async () => {
    let step = 0;
    let asked = 0;
    const started = performance.now();
    await yieldToIo(5, () => {
      asked++;
      return step++;
    });
    const tookMs = performance.now() - started;
    expect(asked).toBeGreaterThan(2);
    // 9 times the 5 ms of work, then it gives the loop back; generous for a loaded machine's last turn.
    expect(tookMs).toBeGreaterThanOrEqual(45);
    expect(tookMs).toBeLessThan(2_000);
  });
});
