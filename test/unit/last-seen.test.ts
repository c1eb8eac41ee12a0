import fc from 'fast-check';
import { expect, test } from 'vitest';
import { LastSeen } from '../../src/runtime/index.js';
import type { Event } from '../../src/shared/index.js';

/** The reference: the times in a Map, re-inserted on each update so that the device seen longest ago is first. */
class MapLastSeen {
  readonly at: Map<string, number>;
  readonly connected = new Set<string>();
  readonly evicted: string[] = [];

  constructor(
    entries: ReadonlyArray<readonly [string, number]>,
    private readonly max: number,
  ) {
    this.at = new Map([...entries].sort((a, b) => a[1] - b[1]));
    this.trim();
  }

  see(ev: Event): void {
    if (ev.source === 'broker') {
      if (ev.type === 'connected') this.connected.add(ev.actor);
      else if (ev.type === 'disconnected') this.connected.delete(ev.actor);
    }
    const seen = this.at.get(ev.actor);
    if (seen !== undefined) {
      if (seen >= ev.at) return;
      this.at.delete(ev.actor);
    }
    this.at.set(ev.actor, ev.at);
    if (seen === undefined) this.trim();
  }

  unneeded(waitedOn: (actor: string) => boolean, seenBefore: number): string[] {
    const candidates: string[] = [];
    for (const [actor, at] of this.at) {
      if (at > seenBefore) break;
      if (!this.connected.has(actor) && !waitedOn(actor)) candidates.push(actor);
    }
    return candidates;
  }

  drop(actors: readonly string[], seenBefore: number): number {
    let forgotten = 0;
    for (const actor of actors) {
      const at = this.at.get(actor);
      if (at === undefined || at > seenBefore || this.connected.has(actor)) continue;
      this.at.delete(actor);
      forgotten++;
    }
    if (forgotten > 0) this.evicted.push(`unneeded:${forgotten}`);
    return forgotten;
  }

  private trim(): void {
    let evicted = 0;
    while (this.at.size > this.max) {
      const oldest = this.at.keys().next().value as string;
      this.at.delete(oldest);
      this.connected.delete(oldest);
      evicted++;
    }
    if (evicted > 0) this.evicted.push(`bound:${evicted}`);
  }
}

const actor = fc.integer({ min: 0, max: 9 }).map((n) => `d${n}`);
const op = fc.oneof(
  fc.record({
    see: actor,
    at: fc.integer({ min: 0, max: 60 }),
    kind: fc.constantFrom('device', 'connected', 'disconnected'),
  }),
  fc.record({ drop: fc.array(actor, { maxLength: 4 }), before: fc.integer({ min: 0, max: 60 }) }),
  fc.record({ unneeded: fc.integer({ min: 0, max: 60 }), waited: fc.array(actor, { maxLength: 3 }) }),
);

test('keeps the times, their order and the connections a Map of times kept, through updates, drops and the bound', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(actor, fc.integer({ min: 0, max: 60 })), { maxLength: 8 }),
      fc.integer({ min: 1, max: 6 }),
      fc.array(op, { maxLength: 60 }),
      async (start, max, ops) => {
        const evicted: string[] = [];
        const seen = new LastSeen(start, max, (reason, n) => evicted.push(`${reason}:${n}`));
        const model = new MapLastSeen(start, max);
        for (const o of ops) {
          if ('see' in o) {
            const ev: Event =
              o.kind === 'device'
                ? { actor: o.see, type: 'x', at: o.at, data: {}, source: 'device' }
                : { actor: o.see, type: o.kind, at: o.at, data: {}, source: 'broker' };
            seen.see(ev);
            model.see(ev);
          } else if ('drop' in o) {
            expect(seen.drop(o.drop, o.before)).toBe(model.drop(o.drop, o.before));
          } else {
            const waitedOn = (a: string): boolean => o.waited.includes(a);
            const unneeded = await seen.unneeded({ waitedOn, known: () => false }, o.unneeded);
            expect(unneeded).toEqual(model.unneeded(waitedOn, o.unneeded));
          }
          expect(seen.entries()).toEqual([...model.at]);
          expect(seen.size).toBe(model.at.size);
        }
        expect([...seen.times]).toEqual([...model.at]);
        expect([...seen.frozenEntries()]).toEqual([...model.at]);
        for (let n = 0; n <= 9; n++) expect(seen.has(`d${n}`)).toBe(model.at.has(`d${n}`));
        expect(evicted).toEqual(model.evicted);
      },
    ),
  );
});
