import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { UnappliedInputs } from '../../src/runtime/unapplied-inputs.js';

type Step = { push: number } | { take: number; pushDuring: number };

describe('inputs awaiting the commit that records them', () => {
  test('are handed on in order, each once, through what a commit records, with inputs pushed meanwhile kept', () => {
    const step = fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 1, max: 1_500 }).map((push): Step => ({ push })) },
      {
        weight: 2,
        arbitrary: fc
          .record({ take: fc.integer({ min: 0, max: 1_600 }), pushDuring: fc.integer({ min: 0, max: 3 }) })
          .map((t): Step => t),
      },
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const held = new UnappliedInputs<{ n: number }, string>();
        const model: number[] = [];
        let next = 1;
        let taken = 0;
        const push = (): void => {
          const seq = next++;
          held.push(seq, { n: seq }, seq % 3 === 0 ? undefined : `p${seq}`);
          model.push(seq);
        };
        for (const s of steps) {
          if ('push' in s) {
            for (let i = 0; i < s.push; i++) push();
          } else {
            // A commit records through somewhere in what was appended before it; applying may push more.
            const through = Math.min(taken + s.take, next - 1);
            const expected = model.filter((seq) => seq <= through);
            const got: number[] = [];
            held.takeThrough(through, (seq, input, profile) => {
              expect(input.n).toBe(seq);
              expect(profile).toBe(seq % 3 === 0 ? undefined : `p${seq}`);
              got.push(seq);
              if (got.length === 1) for (let i = 0; i < s.pushDuring; i++) push();
            });
            // Those pushed meanwhile have later numbers: handed on by a later call.
            expect(got).toEqual(expected);
            model.splice(0, expected.length);
            taken = Math.max(taken, through);
          }
          expect(held.size).toBe(model.length);
        }
        const rest: number[] = [];
        held.takeThrough(Number.MAX_SAFE_INTEGER, (seq) => rest.push(seq));
        expect(rest).toEqual(model);
        expect(held.size).toBe(0);
      }),
      { numRuns: 150 },
    );
  });
});
