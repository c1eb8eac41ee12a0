import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { FrameRing } from '../../src/runtime/journal-frames.js';

interface Frame {
  seq: number;
  slab: Buffer;
  start: number;
  end: number;
  sync: boolean;
}

type Op = { push: { bytes: number; sync: boolean; newSlab: boolean } } | { drop: number };

const ops = fc.array(
  fc
    .oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          bytes: fc.integer({ min: 1, max: 40 }),
          sync: fc.boolean(),
          newSlab: fc.boolean(),
        }),
      },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 60 }) },
    )
    .map((x): Op => (typeof x === 'number' ? { drop: x } : { push: x })),
  { maxLength: 300 },
);

/** The frames from `from` through `through` of the model, one buffer per run end to end in a slab. */
function modelRuns(frames: readonly Frame[]): Buffer[] {
  const runs: Buffer[] = [];
  for (let i = 0; i < frames.length;) {
    const first = frames[i] as Frame;
    let end = first.end;
    for (i++; i < frames.length && frames[i]?.slab === first.slab && frames[i]?.start === end; i++)
      end = (frames[i] as Frame).end;
    runs.push(first.slab.subarray(first.start, end));
  }
  return runs;
}

describe('the ring of frames awaiting their sync', () => {
  test('answers for every range as a list of records would, through growth and drops', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }), ops, (first, steps) => {
        const ring = new FrameRing(first, 16);
        const model: Frame[] = [];
        let next = first;
        let slab = Buffer.alloc(4_096);
        let used = 0;
        for (const step of steps) {
          if ('push' in step) {
            const { bytes, sync, newSlab } = step.push;
            if (newSlab || used + bytes > slab.length) {
              slab = Buffer.alloc(4_096);
              used = 0;
            }
            // Some frames leave a gap after the one before: not end to end.
            const start = used + (bytes % 7 === 0 ? 3 : 0);
            const frame = { seq: next++, slab, start, end: start + bytes, sync };
            used = frame.end;
            ring.push(frame.seq, frame.slab, frame.start, frame.end, frame.sync);
            model.push(frame);
          } else {
            const through = (model[0]?.seq ?? next) - 1 + step.drop;
            ring.dropThrough(through);
            while (model.length > 0 && (model[0] as Frame).seq <= through) model.shift();
          }
          expect(ring.count).toBe(model.length);
          expect(ring.next).toBe(next);
          if (model.length === 0) continue;
          expect(ring.first).toBe((model[0] as Frame).seq);
          // Every range of what is held: a few, not all (quadratic).
          for (const [a, b] of [
            [0, model.length - 1],
            [model.length >> 1, model.length - 1],
            [0, model.length >> 1],
          ] as const) {
            const range = model.slice(a, b + 1);
            const from = (range[0] as Frame).seq;
            const through = (range[range.length - 1] as Frame).seq;
            expect(ring.bytes(from, through)).toBe(range.reduce((n, f) => n + f.end - f.start, 0));
            expect(ring.anySync(from, through)).toBe(range.some((f) => f.sync));
            const runs = ring.runs(from, through);
            const expected = modelRuns(range);
            expect(runs.length).toBe(expected.length);
            runs.forEach((run, i) => {
              expect(run.buffer).toBe(expected[i]?.buffer);
              expect(run.byteOffset).toBe(expected[i]?.byteOffset);
              expect(run.length).toBe(expected[i]?.length);
            });
            expect(ring.oneRun(from, through)).toBe(expected.length === 1);
            expect(ring.slabOf(through)).toBe((range[range.length - 1] as Frame).slab);
            expect(ring.startOf(from)).toBe((range[0] as Frame).start);
            expect(ring.endOf(through)).toBe((range[range.length - 1] as Frame).end);
          }
        }
        // Outside what is held: refused, never another record's frame.
        expect(() => ring.startOf(next)).toThrow(RangeError);
        if (model.length > 0) expect(() => ring.startOf((model[0] as Frame).seq - 1)).toThrow(RangeError);
      }),
      { numRuns: 200 },
    );
  });

  test('takes records only in order, and a drop past them keeps the next number', () => {
    const ring = new FrameRing(5);
    expect(() => ring.push(6, Buffer.alloc(1), 0, 1, false)).toThrow(RangeError);
    ring.push(5, Buffer.alloc(1), 0, 1, false);
    ring.dropThrough(9);
    expect(ring.first).toBe(6);
    expect(ring.count).toBe(0);
    ring.push(6, Buffer.alloc(1), 0, 1, true);
    expect(ring.anySync(6, 6)).toBe(true);
  });
});
