import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { PendingConnections } from '../../src/broker/pending-connections.js';

describe('pending connections by address', () => {
  test('the heaviest address and its oldest connection, as connections come and go', () => {
    const p = new PendingConnections<string>();
    expect(p.heaviest()).toBeUndefined();
    p.add('a', 'a1');
    p.add('b', 'b1');
    p.add('b', 'b2');
    expect(p.heaviest()).toEqual({ address: 'b', count: 2, oldest: 'b1' });
    expect(p.delete('b', 'b1')).toBe(true);
    expect(p.delete('b', 'b1')).toBe(false);
    expect(p.heaviest()?.count).toBe(1);
    p.delete('b', 'b2');
    expect(p.heaviest()).toEqual({ address: 'a', count: 1, oldest: 'a1' });
    p.delete('a', 'a1');
    expect(p.heaviest()).toBeUndefined();
    expect(p.size).toBe(0);
  });

  test('agrees with counting every address, whatever the order of adds and deletes', () => {
    const op = fc.record({
      add: fc.boolean(),
      address: fc.constantFrom('a', 'b', 'c', 'd'),
      n: fc.integer({ min: 0, max: 5 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const p = new PendingConnections<string>();
        const model = new Map<string, string[]>();
        for (const { add, address, n } of ops) {
          const id = `${address}${n}`;
          const held = model.get(address) ?? [];
          if (add && !held.includes(id)) held.push(id);
          if (!add && held.includes(id)) held.splice(held.indexOf(id), 1);
          model.set(address, held);
          if (add) p.add(address, id);
          else p.delete(address, id);

          const most = Math.max(0, ...[...model.values()].map((h) => h.length));
          const top = p.heaviest();
          expect(top?.count ?? 0).toBe(most);
          if (top !== undefined) expect(model.get(top.address)?.[0]).toBe(top.oldest);
          expect(p.size).toBe([...model.values()].reduce((sum, h) => sum + h.length, 0));
          for (const [a, h] of model) expect(p.count(a)).toBe(h.length);
        }
      }),
      { numRuns: 300 },
    );
  });
});
