import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { Ingest, type ProfilePeek, type ProfileSource } from '../../src/ingest/index.js';
import type { Event, Profile } from '../../src/shared/index.js';

/**
 * Profiles in memory behind a cache that starts cold: `get` is held until the test releases it
 * (or fails it), which stands in for a slow LevelDB read; a released read fills the cache.
 */
class SlowProfiles implements ProfileSource {
  readonly cache = new Map<string, Profile | undefined>();
  readonly reads: Array<{ id: string; release: () => void; fail: (err: Error) => void }> = [];

  constructor(private readonly stored: Record<string, Profile>) {}

  peek(id: string): ProfilePeek {
    return this.cache.has(id) ? { hit: true, profile: this.cache.get(id) } : { hit: false };
  }

  get(id: string): Promise<Profile | undefined> {
    return new Promise((resolve, reject) => {
      this.reads.push({
        id,
        release: () => {
          this.cache.set(id, this.stored[id]);
          resolve(this.stored[id]);
        },
        fail: reject,
      });
    });
  }

  /** Releases the pending read of `id`, and lets the ingest queue run. */
  async release(id: string): Promise<void> {
    const i = this.reads.findIndex((r) => r.id === id);
    const [read] = this.reads.splice(i, 1);
    if (!read) throw new Error(`no pending read of ${id}`);
    read.release();
    await flush();
  }
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));
const client = (id: string) => ({ id, address: '127.0.0.1:50000' });
const body = (n: number) => Buffer.from(JSON.stringify({ n }));

function harness(profiles: ProfileSource, logLines: Array<Record<string, unknown>> = []) {
  const delivered: Array<{ ev: Event; profile: Profile | undefined }> = [];
  let now = 1_000;
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const ingest = new Ingest({
    profiles,
    clock: () => now++,
    logger,
    maxPayloadBytes: 1024,
    deadLetter: () => undefined,
    deliver: (ev, profile) => delivered.push({ ev, profile }),
  });
  const publish = (device: string, n: number) =>
    ingest.handleDevicePublish(client(device), `devices/${device}/events/telemetry`, body(n), 1);
  const seen = (device?: string) =>
    delivered
      .filter((d) => device === undefined || d.ev.actor === device)
      .map((d) => d.ev.data['n'] ?? d.ev.type);
  return { ingest, delivered, publish, seen };
}

describe('ordering per device', () => {
  test('a cached profile delivers the event before handleDevicePublish returns', () => {
    const profiles = new SlowProfiles({ d1: { site: 'north' } });
    profiles.cache.set('d1', { site: 'north' });
    const h = harness(profiles);
    void h.publish('d1', 1);
    expect(h.delivered).toEqual([
      {
        ev: { actor: 'd1', type: 'telemetry', at: 1_000, data: { n: 1 }, source: 'device' },
        profile: { site: 'north' },
      },
    ]);
    expect(profiles.reads).toHaveLength(0);
  });

  test('events behind a profile read wait for it, even once the profile is cached', async () => {
    const profiles = new SlowProfiles({ d1: { site: 'north' } });
    const h = harness(profiles);
    void h.publish('d1', 1);
    void h.publish('d1', 2);
    expect(h.seen()).toEqual([]);
    // The cache fills (another reader, a profile update) while event 1 still waits for its own read.
    profiles.cache.set('d1', { site: 'north' });
    void h.publish('d1', 3);
    expect(h.seen()).toEqual([]);
    expect(h.ingest.queued).toBe(3);

    await profiles.release('d1');
    expect(h.seen()).toEqual([1, 2, 3]);
    expect(h.delivered.every((d) => d.profile?.['site'] === 'north')).toBe(true);
    // Once the queue is empty, the device is back on the synchronous path.
    void h.publish('d1', 4);
    expect(h.seen()).toEqual([1, 2, 3, 4]);
    expect(profiles.reads).toHaveLength(0);
  });

  test('a slow device does not hold up the others', async () => {
    const profiles = new SlowProfiles({ slow: { a: 1 }, fast: { a: 2 } });
    profiles.cache.set('fast', { a: 2 });
    const h = harness(profiles);
    void h.publish('slow', 1);
    void h.publish('fast', 1);
    void h.publish('slow', 2);
    void h.publish('fast', 2);
    expect(h.seen('fast')).toEqual([1, 2]);
    expect(h.seen('slow')).toEqual([]);
    await profiles.release('slow');
    expect(h.seen('slow')).toEqual([1, 2]);
  });

  test('reads that complete in the reverse order still deliver each device in its own order', async () => {
    const profiles = new SlowProfiles({ a: {}, b: {} });
    const h = harness(profiles);
    void h.publish('a', 1);
    void h.publish('b', 1);
    void h.publish('a', 2);
    void h.publish('b', 2);
    await profiles.release('b');
    expect(h.seen()).toEqual([1, 2]);
    expect(h.seen('b')).toEqual([1, 2]);
    await profiles.release('a');
    expect(h.seen('a')).toEqual([1, 2]);
  });

  test('connection and cloud events take the same ordered path as device events', async () => {
    const profiles = new SlowProfiles({ d1: {} });
    const h = harness(profiles);
    h.ingest.handleBrokerEvent('d1', 'connected', { address: '127.0.0.1:5' });
    void h.publish('d1', 1);
    void h.ingest.handleCloudEvent(
      Buffer.from(JSON.stringify({ actor: 'd1', type: 'provisioned', data: { plan: 'x' } })),
    );
    h.ingest.handleBrokerEvent('d1', 'disconnected', { reason: 'closed' });
    await profiles.release('d1');
    expect(h.delivered.map((d) => [d.ev.source, d.ev.type])).toEqual([
      ['broker', 'connected'],
      ['device', 'telemetry'],
      ['cloud', 'provisioned'],
      ['broker', 'disconnected'],
    ]);
    expect(h.delivered[2]?.ev.data).toEqual({ plan: 'x' });
    expect(h.delivered[3]?.ev.data).toEqual({ reason: 'closed' });
  });

  test('a failed profile read delivers the event without a profile, logs it, and the queue goes on', async () => {
    const profiles = new SlowProfiles({ d1: { site: 'north' } });
    const logs: Array<Record<string, unknown>> = [];
    const h = harness(profiles, logs);
    void h.publish('d1', 1);
    void h.publish('d1', 2);
    profiles.reads.shift()?.fail(new Error('disk on fire'));
    await flush();
    // Event 1 went on without a profile; event 2 needed a read of its own.
    expect(h.delivered).toMatchObject([{ ev: { data: { n: 1 } }, profile: undefined }]);
    await profiles.release('d1');
    expect(h.delivered).toMatchObject([
      { profile: undefined },
      { ev: { data: { n: 2 } }, profile: { site: 'north' } },
    ]);
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 50,
        deviceId: 'd1',
        err: expect.objectContaining({ message: 'disk on fire' }) as unknown,
      }),
    );
  });

  test('a delivery that throws is logged and the next events still flow', async () => {
    const profiles = new SlowProfiles({ d1: {} });
    const logs: Array<Record<string, unknown>> = [];
    const seen: unknown[] = [];
    const ingest = new Ingest({
      profiles,
      clock: () => 0,
      logger: pino(
        { level: 'info' },
        { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
      ),
      maxPayloadBytes: 1024,
      deadLetter: () => undefined,
      deliver: (ev) => {
        seen.push(ev.data['n']);
        if (ev.data['n'] === 1) throw new Error('engine bug');
      },
    });
    void ingest.handleDevicePublish(client('d1'), 'devices/d1/events/t', body(1), 0);
    void ingest.handleDevicePublish(client('d1'), 'devices/d1/events/t', body(2), 0);
    await profiles.release('d1');
    expect(seen).toEqual([1, 2]);
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: 'delivering an event failed', deviceId: 'd1' }),
    );
  });

  test('drain resolves only once every queued event is delivered', async () => {
    const profiles = new SlowProfiles({ a: {}, b: {} });
    const h = harness(profiles);
    await h.ingest.drain();
    void h.publish('a', 1);
    void h.publish('b', 1);
    let drained = false;
    const draining = h.ingest.drain().then(() => (drained = true));
    await profiles.release('a');
    expect(drained).toBe(false);
    await profiles.release('b');
    await draining;
    expect(h.seen()).toEqual([1, 1]);
  });

  test('any interleaving of arrivals and read completions keeps every device in arrival order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.boolean()), { minLength: 1, maxLength: 40 }),
        async (s, arrivals) => {
          // Reads complete whenever the scheduler decides; between arrivals it may run some of them.
          const cache = new Map<string, Profile>();
          const profiles: ProfileSource = {
            peek: (id) => (cache.has(id) ? { hit: true, profile: cache.get(id) } : { hit: false }),
            get: (id) =>
              s.schedule(Promise.resolve({ id }), `read ${id}`).then((p) => {
                cache.set(id, p);
                return p;
              }),
          };
          const h = harness(profiles);
          const sent: Record<string, number[]> = {};
          for (const [i, [device, yieldHere]] of arrivals.entries()) {
            (sent[device] ??= []).push(i);
            void h.publish(device, i);
            if (yieldHere && s.count() > 0) await s.waitOne();
          }
          await s.waitAll();
          await h.ingest.drain();
          for (const device of ['a', 'b', 'c']) expect(h.seen(device)).toEqual(sent[device] ?? []);
          expect(h.delivered.every((d) => d.profile?.['id'] === d.ev.actor)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
