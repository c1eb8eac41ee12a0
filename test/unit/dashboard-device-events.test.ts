import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { withoutSecretFields } from '../../src/credentials/index.js';
import { DeviceActivity, DeviceEvents, devicePresenceOf } from '../../src/dashboard/index.js';
import type { Event } from '../../src/shared/index.js';

function ev(actor: string, at: number, over: Partial<Event> = {}): Event {
  return { actor, type: 'telemetry', at, data: { n: at }, source: 'device', ...over };
}

describe('DeviceEvents', () => {
  test('keeps the latest events of each device, newest first', () => {
    const events = new DeviceEvents({ perDevice: 3, maxDevices: 10 });
    for (let at = 1; at <= 5; at++) events.add(ev('d1', at));
    events.add(ev('d2', 6));
    expect(events.of('d1').map((e) => e.at)).toEqual([5, 4, 3]);
    expect(events.of('d2').map((e) => e.data)).toEqual([{ n: 6 }]);
    expect(events.of('nobody')).toEqual([]);
  });

  test('forgets the events of the device heard from least recently past the bound', () => {
    const events = new DeviceEvents({ perDevice: 2, maxDevices: 2 });
    events.add(ev('a', 1));
    events.add(ev('b', 2));
    events.add(ev('a', 3));
    events.add(ev('c', 4));
    expect(events.size).toBe(2);
    expect(events.of('b')).toEqual([]);
    expect(events.of('a').map((e) => e.at)).toEqual([3, 1]);
    // The newcomer starts with its own events only, whatever was kept for the device forgotten.
    expect(events.of('c').map((e) => e.at)).toEqual([4]);
  });

  test('keeps the events of the devices heard from last, whatever the order of events, a ring reused whole', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 5 }),
        fc.array(fc.integer({ min: 0, max: 7 }), { maxLength: 60 }),
        (perDevice, maxDevices, actors) => {
          const events = new DeviceEvents({ perDevice, maxDevices });
          // The reference: a Map re-inserted on every event keeps the device heard from least recently first.
          const model = new Map<string, number[]>();
          actors.forEach((n, at) => {
            const actor = `d${n}`;
            const kept = model.get(actor) ?? [];
            model.delete(actor);
            if (!kept.length && model.size >= Math.max(1, maxDevices))
              model.delete(model.keys().next().value as string);
            model.set(actor, [at, ...kept].slice(0, perDevice));
            events.add(ev(actor, at));
          });
          expect(events.size).toBe(model.size);
          for (let n = 0; n <= 7; n++) {
            const ats = events.of(`d${n}`).map((e) => e.at);
            expect(ats).toEqual(model.get(`d${n}`) ?? []);
            expect(events.of(`d${n}`).map((e) => e.data)).toEqual(ats.map((at) => ({ n: at })));
          }
        },
      ),
    );
  });

  test('keeps a bounded preview of the data, never the whole payload', () => {
    const events = new DeviceEvents();
    const data: Record<string, unknown> = { text: 'x'.repeat(1000), nested: { a: 1 }, list: [1, 2] };
    for (let i = 0; i < 20; i++) data[`f${i}`] = i;
    events.add(ev('d', 1, { data }));
    const [seen] = events.of('d');
    expect(seen?.data['text']).toBe(`${'x'.repeat(64)}…`);
    expect(seen?.data['nested']).toBe('{…}');
    expect(seen?.data['list']).toBe('[…]');
    expect(Object.keys(seen?.data ?? {})).toHaveLength(8);
    expect(seen?.more).toBe(15);
  });
});

test('a device is connected, away, silent or never seen, as the presence counts define them', () => {
  let now = 0;
  const devices = new DeviceActivity({ now: () => now, onlineWithinMs: 60_000 });
  expect(devicePresenceOf(devices, 'd')).toBe('never-seen');
  devices.observe(ev('d', 0, { type: 'connected', source: 'broker', data: {} }));
  expect(devicePresenceOf(devices, 'd')).toBe('connected');
  devices.observe(ev('d', 1_000, { type: 'disconnected', source: 'broker', data: {} }));
  now = 60_000;
  expect(devicePresenceOf(devices, 'd')).toBe('away');
  now = 60_001;
  expect(devicePresenceOf(devices, 'd')).toBe('silent');
  expect(devices.events.of('d').map((e) => e.type)).toEqual(['disconnected', 'connected']);
  // Cloud events are about a device, not from it.
  devices.observe(ev('d', 2_000, { source: 'cloud' }));
  expect(devices.events.of('d')).toHaveLength(2);
});

test('a profile is shown without its fields named like a secret, at any depth', () => {
  const plain = { site: 's1', wifi: { ssid: 'x' } };
  expect(withoutSecretFields(plain)).toBe(plain);
  expect(
    withoutSecretFields({
      site: 's1',
      apiKey: 'k',
      wifi: { ssid: 'x', password: 'p' },
      list: [{ token: 't' }],
    }),
  ).toEqual({ site: 's1', wifi: { ssid: 'x' }, list: [{}] });
});
