import type { GroupState, GroupsView, ViewableGroups } from './state.js';

/**
 * A view of groups nothing else can take one of (a map a kind registered outside the engine made): a deep copy, at
 * once.
 */
export function viewOf(groups: Map<string, GroupState>): GroupsView {
  if (isViewable(groups)) return groups.view();
  const copy = structuredClone([...groups]);
  return { [Symbol.iterator]: () => copy[Symbol.iterator](), release: () => undefined };
}

function isViewable(groups: object): groups is ViewableGroups {
  return typeof (groups as Partial<ViewableGroups>).view === 'function';
}

/**
 * The groups of a kind that keeps plain states in a `Map` (count, sequence, all, trigger): a `Map` that can take a
 * view of itself as of now for a checkpoint (`view`). The view is a shallow copy; while it lasts, a state the view
 * still holds is copied into it before the map hands it out (`get`, iteration), since a kind changes the states it
 * reads in place. Storing (`set`) and deleting need nothing: the view keeps the state it had.
 */
export class PlainGroups<S extends GroupState> extends Map<string, S> implements ViewableGroups {
  /** The groups the view has not handed out yet, as of when it was taken; undefined while there is no view. */
  #view: Map<string, S> | undefined;

  override get(group: string): S | undefined {
    const st = super.get(group);
    if (this.#view !== undefined && st !== undefined) this.#keep(group, st);
    return st;
  }

  override forEach(fn: (st: S, group: string, map: Map<string, S>) => void, thisArg?: unknown): void {
    if (this.#view === undefined) super.forEach(fn, thisArg);
    else for (const [group, st] of this.#keptEntries()) fn.call(thisArg, st, group, this);
  }

  override entries(): MapIterator<[string, S]> {
    return this.#view === undefined ? super.entries() : this.#keptEntries();
  }

  override values(): MapIterator<S> {
    return this.#view === undefined ? super.values() : this.#keptValues();
  }

  override [Symbol.iterator](): MapIterator<[string, S]> {
    return this.entries();
  }

  view(): GroupsView {
    if (this.#view !== undefined) throw new Error('the groups have a view already');
    const view = new Map(super.entries());
    this.#view = view;
    const release = (): void => {
      if (this.#view === view) this.#view = undefined;
    };
    return {
      *[Symbol.iterator]() {
        for (const entry of view) {
          // Handed out to be encoded before the next input: from here on the view need not keep it.
          view.delete(entry[0]);
          yield entry;
        }
        release();
      },
      release,
    };
  }

  *#keptEntries(): MapIterator<[string, S]> {
    for (const [group, st] of super.entries()) {
      this.#keep(group, st);
      yield [group, st];
    }
  }

  *#keptValues(): MapIterator<S> {
    for (const [, st] of this.#keptEntries()) yield st;
  }

  /** The view keeps a copy of the state it shares with the map, which the caller may change. */
  #keep(group: string, st: S): void {
    const view = this.#view;
    if (view !== undefined && view.get(group) === st) view.set(group, structuredClone(st));
  }
}
