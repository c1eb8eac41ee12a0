import type { GroupState, GroupsView } from './state.js';

const HANDED_OUT = Symbol('handed out');

/**
 * A scenario's groups as of one instant, for a checkpoint to read while the groups go on changing (copy-on-write):
 * the groups' keys and what they store copied flat at the instant (two arrays: a copy of 100,000 groups takes about a
 * millisecond, into a `Map` ten times that), and a state kept for each group changed since, the first time it is
 * changed. The groups call `handingOut` before they hand out a state the caller may change in place, and `replacing`
 * before they store over, free or delete one; once the view has handed a group out, what was kept for it goes.
 *
 * `V` is what the groups store per group (a state, a packed window, a slot), `K` what is kept of a changed one.
 */
export class GroupsAtInstant<V, K = V> {
  private readonly kept = new Map<string, K | typeof HANDED_OUT>();
  private released = false;

  constructor(
    private readonly groups: readonly string[],
    private readonly stored: readonly V[],
    private readonly read: (v: V) => GroupState,
    private readonly readKept: (k: K) => GroupState,
    private readonly onRelease: () => void,
  ) {}

  /** Whether the group's state as of the instant may still be read from what the groups store for it now. */
  needs(group: string): boolean {
    return !this.released && !this.kept.has(group);
  }

  /** The groups are about to hand out the group's state, which may be changed in place: keeps `copy()`. */
  handingOut(group: string, copy: () => K): void {
    if (this.needs(group)) this.kept.set(group, copy());
  }

  /** The groups are about to store over, or delete, what they hold for the group (`kept`, or what makes it). */
  replacing(group: string, kept: K | (() => K)): void {
    if (this.needs(group)) this.kept.set(group, typeof kept === 'function' ? (kept as () => K)() : kept);
  }

  /** The view: each group as of the instant, handed out once, in the groups' order then. */
  view(): GroupsView {
    const { groups, stored, kept, read, readKept } = this;
    const release = (): void => this.release();
    return {
      *[Symbol.iterator]() {
        for (let i = 0; i < groups.length; i++) {
          const group = groups[i] as string;
          const k = kept.get(group);
          // Handed out to be encoded before the next input: what was kept for it goes. A group not changed since the
          // instant gets no entry (a mark per group would be a map of every group, the largest thing a checkpoint
          // made): one changed after it was handed out is kept once more, for nothing, until the view is released.
          if (k !== undefined) kept.set(group, HANDED_OUT);
          yield [group, k === undefined || k === HANDED_OUT ? read(stored[i] as V) : readKept(k)];
        }
        release();
      },
      release,
    };
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.kept.clear();
    this.onRelease();
  }
}
