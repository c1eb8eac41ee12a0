import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { topicMatches } from '../../src/broker/index.js';
import { ClientFilters, TopicFilterSet } from '../../src/shared/index.js';

const FILTERS = [
  'devices/+/commands/#',
  'devices/d1/commands/reboot',
  'devices/d1/events/#',
  'devices/+/events/temp',
  'a/+/c',
  'a/#',
  '+/b',
  '+',
  'x//y',
  'x/+/y',
  '$SYS/+/heartbeat',
  'devices/',
];
const TOPICS = [
  'devices/d1/events/temp',
  'devices/d2/events/temp',
  'devices/d2/events/door',
  'devices/d2/commands/open',
  'devices/d1/commands/reboot',
  'devices/d1',
  'devices',
  'devices/',
  'a',
  'a/b',
  'a/b/c',
  'q/b',
  'q',
  'x//y',
  'x/z/y',
  'x/y',
  '$SYS/abc/heartbeat',
  'vigil/deadletter',
];

describe('TopicFilterSet', () => {
  test('matches a topic exactly when one of the filters held matches it', () => {
    // Every subset of the filters in turn, by the bits of a counter.
    for (let mask = 0; mask < 1 << FILTERS.length; mask += 7) {
      const held = FILTERS.filter((_, i) => (mask & (1 << i)) !== 0);
      const set = new TopicFilterSet();
      for (const filter of held) set.add(filter);
      for (const topic of TOPICS) {
        expect(set.matchesAny(topic), `${topic} against ${held.join(' ')}`).toBe(
          held.some((filter) => topicMatches(filter, topic)),
        );
      }
    }
  });

  test('a filter added twice matches until it is deleted twice; deleting what is not held changes nothing', () => {
    const set = new TopicFilterSet();
    set.add('devices/+/events/#');
    set.add('devices/+/events/#');
    set.add('devices/d1/commands/#');
    expect(set.delete('devices/+/events')).toBe(false);
    expect(set.delete('devices/d9/events/#')).toBe(false);
    expect(set.delete('devices/+/events/#')).toBe(true);
    expect(set.matchesAny('devices/d1/events/temp')).toBe(true);
    expect(set.delete('devices/+/events/#')).toBe(true);
    expect(set.matchesAny('devices/d1/events/temp')).toBe(false);
    expect(set.delete('devices/+/events/#')).toBe(false);
    expect(set.matchesAny('devices/d1/commands/reboot')).toBe(true);
    expect(set.size).toBe(1);
    expect(set.delete('devices/d1/commands/#')).toBe(true);
    expect(set.size).toBe(0);
    expect(set.matchesAny('devices/d1/commands/reboot')).toBe(false);
  });

  test('after any adds and deletes, matches a topic exactly when one of the filters held matches it', () => {
    const level = fc.constantFrom('a', 'bb', '');
    const filter = fc
      .array(fc.oneof(level, fc.constant('+')), { minLength: 1, maxLength: 2 })
      .chain((levels) => fc.constantFrom(levels.join('/'), [...levels, '#'].join('/')));
    const topics = fc.array(
      fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/')),
      {
        minLength: 1,
        maxLength: 8,
      },
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), filter), { maxLength: 30 }), topics, (ops, probes) => {
        const set = new TopicFilterSet();
        const held: string[] = [];
        for (const [add, f] of ops) {
          if (add) {
            set.add(f);
            held.push(f);
          } else {
            const at = held.indexOf(f);
            expect(set.delete(f)).toBe(at !== -1);
            if (at !== -1) held.splice(at, 1);
          }
          for (const topic of probes) {
            expect(set.matchesAny(topic)).toBe(held.some((h) => topicMatches(h, topic)));
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  test("the devices' command filters: one taken away leaves the others matching, an event topic matches none", () => {
    const set = new TopicFilterSet();
    for (const id of ['d1', 'd2', 'd3']) set.add(`devices/${id}/commands/#`);
    set.add('devices/d2/status/#');
    expect(set.matchesAny('devices/d1/events/temp')).toBe(false);
    expect(set.delete('devices/d1/commands/#')).toBe(true);
    expect(set.matchesAny('devices/d1/commands/reboot')).toBe(false);
    expect(set.matchesAny('devices/d2/commands/reboot')).toBe(true);
    expect(set.matchesAny('devices/d2/status/x')).toBe(true);
    expect(set.delete('devices/d2/status/#')).toBe(true);
    expect(set.matchesAny('devices/d2/status/x')).toBe(false);
    expect(set.matchesAny('devices/d3/commands')).toBe(true);
  });

  test('a filter that ends where another goes on is kept apart from it', () => {
    const set = new TopicFilterSet();
    set.add('a/b');
    set.add('a/b/c');
    set.delete('a/b/c');
    expect(set.matchesAny('a/b')).toBe(true);
    expect(set.matchesAny('a/b/c')).toBe(false);
    set.add('a/b/c');
    set.delete('a/b');
    expect(set.matchesAny('a/b')).toBe(false);
    expect(set.matchesAny('a/b/c')).toBe(true);
  });

  test('many filters of one shape with `+` before their own levels', () => {
    const set = new TopicFilterSet();
    for (let i = 0; i < 40; i++) set.add(`devices/+/commands/c${i}`);
    expect(set.matchesAny('devices/d1/commands/c39')).toBe(true);
    expect(set.matchesAny('devices/d1/commands/c40')).toBe(false);
    expect(set.matchesAny('devices/d1/events/c1')).toBe(false);
    for (let i = 0; i < 30; i++) set.delete(`devices/+/commands/c${i}`);
    expect(set.matchesAny('devices/d1/commands/c29')).toBe(false);
    expect(set.matchesAny('devices/d1/commands/c30')).toBe(true);
  });

  test('a filter starting with a wildcard matches a topic starting with $, as the router it stands for does', () => {
    const set = new TopicFilterSet();
    set.add('#');
    expect(set.matchesAny('$SYS/b1/new/clients')).toBe(true);
  });
});

describe('ClientFilters', () => {
  test("a filter stays matched while a client holds it; a client's filters go with it", () => {
    const filters = new ClientFilters();
    filters.add('c1', ['devices/+/events/#', 'devices/+/events/#']);
    filters.add('c2', ['devices/+/events/#', 'devices/d2/commands/#']);
    filters.remove('c1', ['devices/+/events/#', 'not/held']);
    expect(filters.matchesAny('devices/d1/events/temp')).toBe(true);
    filters.clean('c2');
    expect(filters.matchesAny('devices/d1/events/temp')).toBe(false);
    expect(filters.matchesAny('devices/d2/commands/open')).toBe(false);
    filters.add('c1', ['devices/d1/events/temp']);
    expect(filters.matchesAny('devices/d1/events/temp')).toBe(true);
    filters.clean('c1');
    expect(filters.matchesAny('devices/d1/events/temp')).toBe(false);
  });
});
