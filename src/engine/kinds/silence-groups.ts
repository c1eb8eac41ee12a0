import type { Scenario } from '../../rules/types.js';
import type { Event, EventSource } from '../../shared/index.js';
import { GroupsAtInstant } from '../groups-at-instant.js';
import type { GroupsView, SeenEvent, ViewableGroups } from '../state.js';
import { timerKey } from '../step.js';
import type { SilenceState } from './silence.js';

const INITIAL_CAPACITY = 64;
/** Distinct event types kept as one string each (`telemetry`, `status`, …); past this, each slot keeps its own. */
const MAX_SHARED_TYPES = 256;

/**
 * A silence scenario's groups, column by column: per group a slot in a few arrays (the deadline, the last event's
 * time, actor, type and source, its data when it has any) instead of two objects and two boxed numbers. A silence is
 * kept for every device that spoke in the last `for`, so at a high churn of devices this is most of what the engine
 * holds. It reads and writes like a `Map` of `SilenceState`s: `get` and iteration make the plain state (the one
 * checkpoints hold), `set` takes it apart, so nothing outside the silence kind sees the difference.
 *
 * A checkpoint's `view` (see `GroupsAtInstant`) copies the groups' slots; while it lasts, a group it still needs is
 * made into its plain state for it before its slot is written or freed.
 */
export class SilenceGroups implements Map<string, SilenceState>, ViewableGroups {
  private readonly slotOf = new Map<string, number>();
  private instant: GroupsAtInstant<number, SilenceState> | undefined;
  private dueAt = new Float64Array(INITIAL_CAPACITY);
  private lastAt = new Float64Array(INITIAL_CAPACITY);
  private actors: Array<string | undefined> = [];
  private types: Array<string | undefined> = [];
  private sources: Array<EventSource | undefined> = [];
  /** Each group's timer key (`timerKey`), made on its first event rather than on every one. */
  private timerKeys: Array<string | undefined> = [];
  /** The last event's data, by slot, for the groups that keep it (scenarios that read `last.data`). */
  private readonly data = new Map<number, Record<string, unknown>>();
  /**
   * Each event's type is a string of its own (parsed from its topic): kept per group, a device's copy of `telemetry`
   * costs 32 bytes. The groups share one string per type instead.
   */
  private readonly sharedTypes = new Map<string, string>();
  private freeSlots: number[] = [];
  private nextSlot = 0;

  get size(): number {
    return this.slotOf.size;
  }

  /** Groups the columns have room for: it grows with the groups, and shrinks once most have gone. */
  get capacity(): number {
    return this.dueAt.length;
  }

  get [Symbol.toStringTag](): string {
    return 'SilenceGroups';
  }

  has(group: string): boolean {
    return this.slotOf.has(group);
  }

  get(group: string): SilenceState | undefined {
    const slot = this.slotOf.get(group);
    return slot === undefined ? undefined : this.stateAt(slot);
  }

  /** The deadline and actor of a group, without making its state. */
  timerOf(group: string): { actor: string; dueAt: number } | undefined {
    const slot = this.slotOf.get(group);
    if (slot === undefined) return undefined;
    return { actor: this.actors[slot] as string, dueAt: this.dueAt[slot] as number };
  }

  set(group: string, st: SilenceState): this {
    const { last } = st;
    this.write(group, st.dueAt, last.actor, last.type, last.at, last.source, last.data);
    return this;
  }

  /**
   * Starts the group's silence again from `ev`, until `dueAt`: what `set` does with `{ dueAt, last: seen(ev,
   * keepData) }`, without making either object (this is every device event's path). Returns the group's timer key
   * (`timerKey(sc, group)`), made on the group's first event only.
   */
  restart(group: string, dueAt: number, ev: Event, keepData: boolean, sc: Scenario): string {
    const slot = this.write(
      group,
      dueAt,
      ev.actor,
      ev.type,
      ev.at,
      ev.source,
      keepData ? ev.data : undefined,
    );
    return (this.timerKeys[slot] ??= timerKey(sc, group));
  }

  private write(
    group: string,
    dueAt: number,
    actor: string,
    type: string,
    at: number,
    source: EventSource,
    data: Record<string, unknown> | undefined,
  ): number {
    if (this.instant !== undefined) this.save(group);
    let slot = this.slotOf.get(group);
    if (slot === undefined) {
      slot = this.allocate();
      this.slotOf.set(group, slot);
    }
    this.dueAt[slot] = dueAt;
    this.lastAt[slot] = at;
    // The same id as the one kept: the copy of this event's id (a string of its own per publish) is let go.
    const kept = this.actors[slot];
    if (kept !== actor) this.actors[slot] = group === actor ? group : actor;
    this.types[slot] = this.shared(type);
    this.sources[slot] = source;
    if (data !== undefined) this.data.set(slot, data);
    else this.data.delete(slot);
    return slot;
  }

  private shared(type: string): string {
    const kept = this.sharedTypes.get(type);
    if (kept !== undefined) return kept;
    if (this.sharedTypes.size < MAX_SHARED_TYPES) this.sharedTypes.set(type, type);
    return type;
  }

  delete(group: string): boolean {
    const slot = this.slotOf.get(group);
    if (slot === undefined) return false;
    if (this.instant !== undefined) this.save(group);
    this.slotOf.delete(group);
    this.actors[slot] = undefined;
    this.types[slot] = undefined;
    this.sources[slot] = undefined;
    this.timerKeys[slot] = undefined;
    this.data.delete(slot);
    this.freeSlots.push(slot);
    // Past a churn of devices the columns have room for all of them: room for twice those left is kept. Not while a
    // view reads the slots as they were.
    const room = this.dueAt.length;
    if (this.instant === undefined && this.slotOf.size * 4 <= room && room > INITIAL_CAPACITY) this.compact();
    return true;
  }

  clear(): void {
    if (this.instant !== undefined) for (const group of this.slotOf.keys()) this.save(group);
    this.slotOf.clear();
    this.actors = [];
    this.types = [];
    this.sources = [];
    this.timerKeys = [];
    this.data.clear();
    this.freeSlots = [];
    this.nextSlot = 0;
    this.dueAt = new Float64Array(INITIAL_CAPACITY);
    this.lastAt = new Float64Array(INITIAL_CAPACITY);
  }

  forEach(
    fn: (st: SilenceState, group: string, map: Map<string, SilenceState>) => void,
    thisArg?: unknown,
  ): void {
    for (const [group, st] of this) fn.call(thisArg, st, group, this);
  }

  *entries(): MapIterator<[string, SilenceState]> {
    for (const [group, slot] of this.slotOf) yield [group, this.stateAt(slot)];
  }

  keys(): MapIterator<string> {
    return this.slotOf.keys();
  }

  *values(): MapIterator<SilenceState> {
    for (const slot of this.slotOf.values()) yield this.stateAt(slot);
  }

  [Symbol.iterator](): MapIterator<[string, SilenceState]> {
    return this.entries();
  }

  /** The groups as of now, for a checkpoint: see the class. */
  view(): GroupsView {
    if (this.instant !== undefined) throw new Error('the groups have a view already');
    const stateAt = (slot: number): SilenceState => this.stateAt(slot);
    const instant = new GroupsAtInstant(
      [...this.slotOf.keys()],
      [...this.slotOf.values()],
      stateAt,
      (st: SilenceState) => st,
      () => {
        if (this.instant === instant) this.instant = undefined;
      },
    );
    this.instant = instant;
    return instant.view();
  }

  /** The view keeps the group's state as it is, before its slot is written or freed. */
  private save(group: string): void {
    const slot = this.slotOf.get(group);
    if (slot !== undefined) this.instant?.replacing(group, () => this.stateAt(slot));
  }

  /** The plain state, in the shape and key order `onSilenceEvent` makes it. */
  private stateAt(slot: number): SilenceState {
    const last: SeenEvent = {
      actor: this.actors[slot] as string,
      type: this.types[slot] as string,
      at: this.lastAt[slot] as number,
      source: this.sources[slot] as EventSource,
    };
    const data = this.data.get(slot);
    if (data !== undefined) last.data = data;
    return { dueAt: this.dueAt[slot] as number, last };
  }

  /** The groups in slots `0` to `size - 1`, in their order, in columns of room for twice as many. */
  private compact(): void {
    const capacity = Math.max(INITIAL_CAPACITY, this.slotOf.size * 2);
    const dueAt = new Float64Array(capacity);
    const lastAt = new Float64Array(capacity);
    const actors: Array<string | undefined> = [];
    const types: Array<string | undefined> = [];
    const sources: Array<EventSource | undefined> = [];
    const timerKeys: Array<string | undefined> = [];
    const data: Array<[number, Record<string, unknown>]> = [];
    let next = 0;
    for (const [group, slot] of this.slotOf) {
      dueAt[next] = this.dueAt[slot] as number;
      lastAt[next] = this.lastAt[slot] as number;
      actors.push(this.actors[slot]);
      types.push(this.types[slot]);
      sources.push(this.sources[slot]);
      timerKeys.push(this.timerKeys[slot]);
      const kept = this.data.get(slot);
      if (kept !== undefined) data.push([next, kept]);
      this.slotOf.set(group, next++);
    }
    this.dueAt = dueAt;
    this.lastAt = lastAt;
    this.actors = actors;
    this.types = types;
    this.sources = sources;
    this.timerKeys = timerKeys;
    this.data.clear();
    for (const [slot, kept] of data) this.data.set(slot, kept);
    this.freeSlots = [];
    this.nextSlot = next;
  }

  private allocate(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    if (this.nextSlot === this.dueAt.length) {
      const grown = (a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.dueAt = grown(this.dueAt);
      this.lastAt = grown(this.lastAt);
    }
    return this.nextSlot++;
  }
}
