import { GroupsAtInstant } from './groups-at-instant.js';
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

const same = <S>(st: S): S => st;

/**
 * The groups of a kind that keeps plain states in a `Map` (count, sequence, all, trigger): a `Map` that can take a
 * view of itself as of now for a checkpoint (`view`, see `GroupsAtInstant`). While a view lasts, a state is copied
 * for it before the map hands it out (`get`, iteration), since a kind changes the states it reads in place, and the
 * state stored over or deleted is kept for it as it is.
 */
export class PlainGroups<S extends GroupState> extends Map<string, S> implements ViewableGroups {
  #instant: GroupsAtInstant<S> | undefined;

  override get(group: string): S | undefined {
    const st = super.get(group);
    if (this.#instant !== undefined && st !== undefined)
      this.#instant.handingOut(group, () => structuredClone(st));
    return st;
  }

  override set(group: string, st: S): this {
    if (this.#instant !== undefined) this.#replacing(group);
    return super.set(group, st);
  }

  override delete(group: string): boolean {
    if (this.#instant !== undefined) this.#replacing(group);
    return super.delete(group);
  }

  override clear(): void {
    if (this.#instant !== undefined) for (const group of super.keys()) this.#replacing(group);
    super.clear();
  }

  override forEach(fn: (st: S, group: string, map: Map<string, S>) => void, thisArg?: unknown): void {
    if (this.#instant === undefined) super.forEach(fn, thisArg);
    else for (const [group, st] of this.#keptEntries()) fn.call(thisArg, st, group, this);
  }

  override entries(): MapIterator<[string, S]> {
    return this.#instant === undefined ? super.entries() : this.#keptEntries();
  }

  override values(): MapIterator<S> {
    return this.#instant === undefined ? super.values() : this.#keptValues();
  }

  override [Symbol.iterator](): MapIterator<[string, S]> {
    return this.entries();
  }

  view(): GroupsView {
    if (this.#instant !== undefined) throw new Error('the groups have a view already');
    const instant = new GroupsAtInstant<S>([...super.keys()], [...super.values()], same, same, () => {
      if (this.#instant === instant) this.#instant = undefined;
    });
    this.#instant = instant;
    return instant.view();
  }

  #replacing(group: string): void {
    const st = super.get(group);
    if (st !== undefined) this.#instant?.replacing(group, st);
  }

  *#keptEntries(): MapIterator<[string, S]> {
    for (const [group, st] of super.entries()) {
      this.#instant?.handingOut(group, () => structuredClone(st));
      yield [group, st];
    }
  }

  *#keptValues(): MapIterator<S> {
    for (const [, st] of this.#keptEntries()) yield st;
  }
}
