import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { TimerQueue } from '../../src/engine/index.js';

/** The obvious model: a map of key → (dueAt, order of scheduling), sorted on demand. */
class NaiveQueue {
  private readonly timers = new Map<string, { dueAt: number; seq: number }>();
  private seq = 0;
  get size(): number {
    return this.timers.size;
  }
  schedule(key: string, dueAt: number): void {
    this.timers.set(key, { dueAt, seq: this.seq++ });
  }
  cancel(key: string): boolean {
    return this.timers.delete(key);
  }
  private sorted(): Array<{ key: string; dueAt: number }> {
    return [...this.timers.entries()]
      .sort(([, a], [, b]) => a.dueAt - b.dueAt || a.seq - b.seq)
      .map(([key, t]) => ({ key, dueAt: t.dueAt }));
  }
  peek(): { key: string; dueAt: number } | undefined {
    return this.sorted()[0];
  }
  popDue(now: number): Array<{ key: string; dueAt: number }> {
    const due = this.sorted().filter((t) => t.dueAt <= now);
    for (const t of due) this.timers.delete(t.key);
    return due;
  }
}

type Op =
  | { op: 'schedule'; key: string; dueAt: number }
  | { op: 'cancel'; key: string }
  | { op: 'popDue'; now: number }
  | { op: 'peek' }
  | { op: 'roundtrip' };

const key = fc.integer({ min: 0, max: 40 }).map((n) => `k${n}`);
const time = fc.integer({ min: 0, max: 200 });
const ops: fc.Arbitrary<Op[]> = fc.array(
  fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('schedule' as const), key, dueAt: time }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('cancel' as const), key }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('popDue' as const), now: time }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('peek' as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('roundtrip' as const) }) },
  ),
  { maxLength: 300 },
);

describe('TimerQueue', () => {
  test('behaves like a sorted map of deadlines, ties in scheduling order', () => {
    fc.assert(
      fc.property(ops, (list) => {
        let q = new TimerQueue();
        const model = new NaiveQueue();
        for (const o of list) {
          switch (o.op) {
            case 'schedule':
              q.schedule(o.key, o.dueAt);
              model.schedule(o.key, o.dueAt);
              break;
            case 'cancel':
              expect(q.cancel(o.key)).toBe(model.cancel(o.key));
              break;
            case 'popDue':
              expect(q.popDue(o.now)).toEqual(model.popDue(o.now));
              break;
            case 'peek':
              expect(q.peek()).toEqual(model.peek());
              break;
            case 'roundtrip':
              q = TimerQueue.restore(
                JSON.parse(JSON.stringify(q.snapshot())) as ReturnType<TimerQueue['snapshot']>,
              );
              break;
          }
          expect(q.size).toBe(model.size);
        }
        expect(q.popDue(Number.POSITIVE_INFINITY)).toEqual(model.popDue(Number.POSITIVE_INFINITY));
      }),
      { numRuns: 500 },
    );
  });

  test('gives back its room as bursts of timers fire or are cancelled, order and actors kept', () => {
    const burst = fc.record({
      op: fc.constant('burst' as const),
      from: fc.integer({ min: 0, max: 2_000 }),
      n: fc.integer({ min: 50, max: 600 }),
      at: time,
    });
    const step = fc.oneof(
      { weight: 2, arbitrary: burst },
      { weight: 3, arbitrary: fc.record({ op: fc.constant('popDue' as const), now: time }) },
      {
        weight: 2,
        arbitrary: fc.record({ op: fc.constant('cancel' as const), key: fc.integer({ min: 0, max: 2_600 }) }),
      },
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), (list) => {
        const q = new TimerQueue();
        const model = new NaiveQueue();
        for (const o of list) {
          if (o.op === 'burst') {
            for (let i = o.from; i < o.from + o.n; i++) {
              const dueAt = o.at + ((i * 37) % 97);
              q.schedule(`t${i}`, dueAt, `d${i}`);
              model.schedule(`t${i}`, dueAt);
            }
          } else if (o.op === 'cancel') {
            expect(q.cancel(`t${o.key}`)).toBe(model.cancel(`t${o.key}`));
          } else {
            const due = q.popDue(o.now);
            expect(due.map(({ key, dueAt }) => ({ key, dueAt }))).toEqual(model.popDue(o.now));
            for (const t of due) expect(t.actor).toBe(`d${t.key.slice(1)}`);
          }
          expect(q.size).toBe(model.size);
          // Room for at most four times the timers pending, or the first capacity.
          expect(q.capacity).toBeLessThanOrEqual(Math.max(64, q.size * 4));
        }
        expect(q.popDue(Number.POSITIVE_INFINITY).map(({ key, dueAt }) => ({ key, dueAt }))).toEqual(
          model.popDue(Number.POSITIVE_INFINITY),
        );
        expect(q.capacity).toBe(64);
      }),
      { numRuns: 200 },
    );
  });

  test('a rescheduled timer moves, it is not duplicated', () => {
    const q = new TimerQueue();
    q.schedule('a', 100);
    q.schedule('b', 50);
    q.schedule('a', 10);
    expect(q.size).toBe(2);
    expect(q.popDue(1_000)).toEqual([
      { key: 'a', dueAt: 10 },
      { key: 'b', dueAt: 50 },
    ]);
  });

  test('nothing is due a millisecond before its deadline', () => {
    const q = new TimerQueue();
    q.schedule('silence', 300_000);
    expect(q.popDue(299_999)).toEqual([]);
    expect(q.popDue(300_000)).toEqual([{ key: 'silence', dueAt: 300_000 }]);
  });

  test('holds a million timers and gives them back in order', () => {
    const q = new TimerQueue();
    const n = 1_000_000;
    // A fixed permutation of deadlines, so the heap is really exercised.
    for (let i = 0; i < n; i++) q.schedule(`d${i}`, (i * 7_919) % n);
    expect(q.size).toBe(n);
    for (let i = 0; i < n; i += 2) q.cancel(`d${i}`);
    expect(q.size).toBe(n / 2);
    let previous = -1;
    let popped = 0;
    let outOfOrder = 0;
    let cancelledSeen = 0;
    for (let t = q.pop(); t; t = q.pop()) {
      if (t.dueAt < previous) outOfOrder++;
      if (Number(t.key.slice(1)) % 2 === 0) cancelledSeen++;
      previous = t.dueAt;
      popped++;
    }
    expect({ popped, outOfOrder, cancelledSeen }).toEqual({ popped: n / 2, outOfOrder: 0, cancelledSeen: 0 });
  });
});
