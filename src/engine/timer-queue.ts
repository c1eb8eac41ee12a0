/** Pending timers as plain data, earliest first (ties in the order they were scheduled). */
export interface TimerQueueState {
  keys: string[];
  dueAt: number[];
}

const INITIAL_CAPACITY = 64;

/** A pending timer as the queue hands it out. */
export interface DueTimer {
  key: string;
  dueAt: number;
  /** What it was scheduled with (whose profile its firing needs), if anything. */
  actor?: string | undefined;
}

/**
 * Pending timers keyed by name: a binary min-heap on typed arrays with an index from key to slot, so a
 * million timers cost a few arrays rather than a million objects, and schedule, cancel and pop are
 * O(log n). Timers due at the same time come out in the order they were (last) scheduled.
 */
export class TimerQueue {
  private readonly slotOf = new Map<string, number>();
  private keyOf: Array<string | undefined> = [];
  /** Slot → the actor it was (last) scheduled with: kept here rather than in a map of its own beside the queue. */
  private actors: Array<string | undefined> = [];
  private due = new Float64Array(INITIAL_CAPACITY);
  private seq = new Float64Array(INITIAL_CAPACITY);
  /** Slot → its index in the heap. */
  private pos = new Int32Array(INITIAL_CAPACITY);
  /** Heap of slots, ordered by (due, seq). */
  private heap = new Int32Array(INITIAL_CAPACITY);
  private freeSlots = new Int32Array(INITIAL_CAPACITY);
  private freeCount = 0;
  private nextSlot = 0;
  private count = 0;
  private nextSeq = 0;

  get size(): number {
    return this.count;
  }

  /** Timers the arrays have room for: it grows with the pending timers, and shrinks once most have gone. */
  get capacity(): number {
    return this.due.length;
  }

  has(key: string): boolean {
    return this.slotOf.has(key);
  }

  /** The deadline of a pending timer. */
  dueAt(key: string): number | undefined {
    const slot = this.slotOf.get(key);
    return slot === undefined ? undefined : this.due[slot];
  }

  /** The actor a pending timer was (last) scheduled with. */
  actorOf(key: string): string | undefined {
    const slot = this.slotOf.get(key);
    return slot === undefined ? undefined : this.actors[slot];
  }

  /** Arms `key` for `dueAt`, or moves it there when it is already pending; `actor` is handed out with it. */
  schedule(key: string, dueAt: number, actor?: string): void {
    const existing = this.slotOf.get(key);
    if (existing !== undefined) {
      // An equal actor keeps the string already held (each event's id is a string of its own).
      if (this.actors[existing] !== actor) this.actors[existing] = actor;
      this.due[existing] = dueAt;
      this.seq[existing] = this.nextSeq++;
      const i = this.pos[existing] as number;
      this.siftDown(i);
      this.siftUp(this.pos[existing] as number);
      return;
    }
    const slot = this.allocate();
    this.slotOf.set(key, slot);
    this.keyOf[slot] = key;
    this.actors[slot] = actor;
    this.due[slot] = dueAt;
    this.seq[slot] = this.nextSeq++;
    const i = this.count++;
    this.heap[i] = slot;
    this.pos[slot] = i;
    this.siftUp(i);
  }

  /** Disarms `key`; false when it was not pending. */
  cancel(key: string): boolean {
    const slot = this.slotOf.get(key);
    if (slot === undefined) return false;
    this.removeAt(this.pos[slot] as number);
    return true;
  }

  /** The earliest pending timer. */
  peek(): DueTimer | undefined {
    if (this.count === 0) return undefined;
    const slot = this.heap[0] as number;
    return { key: this.keyOf[slot] as string, dueAt: this.due[slot] as number, actor: this.actors[slot] };
  }

  /** Removes and returns the earliest pending timer. */
  pop(): DueTimer | undefined {
    const top = this.peek();
    if (top) this.removeAt(0);
    return top;
  }

  /** Removes and returns every timer due at or before `now`, earliest first. */
  popDue(now: number): DueTimer[] {
    const out: DueTimer[] = [];
    while (this.count > 0 && (this.due[this.heap[0] as number] as number) <= now) {
      out.push(this.pop() as DueTimer);
    }
    return out;
  }

  clear(): void {
    this.slotOf.clear();
    this.count = 0;
    this.shrink();
  }

  snapshot(): TimerQueueState {
    const slots = Array.from(this.heap.subarray(0, this.count));
    slots.sort(
      (a, b) =>
        (this.due[a] as number) - (this.due[b] as number) ||
        (this.seq[a] as number) - (this.seq[b] as number),
    );
    return {
      keys: slots.map((s) => this.keyOf[s] as string),
      dueAt: slots.map((s) => this.due[s] as number),
    };
  }

  static restore(state: TimerQueueState): TimerQueue {
    const q = new TimerQueue();
    state.keys.forEach((key, i) => q.schedule(key, state.dueAt[i] as number));
    return q;
  }

  private allocate(): number {
    if (this.freeCount > 0) return this.freeSlots[--this.freeCount] as number;
    if (this.nextSlot === this.due.length) this.grow();
    return this.nextSlot++;
  }

  private grow(): void {
    const capacity = this.due.length * 2;
    const grown = <T extends Float64Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(capacity);
      b.set(a);
      return b;
    };
    this.due = grown(this.due, (n) => new Float64Array(n));
    this.seq = grown(this.seq, (n) => new Float64Array(n));
    this.pos = grown(this.pos, (n) => new Int32Array(n));
    this.heap = grown(this.heap, (n) => new Int32Array(n));
    this.freeSlots = grown(this.freeSlots, (n) => new Int32Array(n));
  }

  private removeAt(i: number): void {
    const slot = this.heap[i] as number;
    const key = this.keyOf[slot] as string;
    this.slotOf.delete(key);
    this.keyOf[slot] = undefined;
    this.actors[slot] = undefined;
    this.freeSlots[this.freeCount++] = slot;
    const last = this.heap[--this.count] as number;
    if (i < this.count) {
      this.heap[i] = last;
      this.pos[last] = i;
      this.siftDown(i);
      this.siftUp(this.pos[last] ?? i);
    }
    // A burst of timers (a churn of devices) left arrays for all of them: room for twice those left is kept.
    if (this.count * 4 <= this.due.length && this.due.length > INITIAL_CAPACITY) this.shrink();
  }

  /** Arrays for twice the timers pending (at least the first capacity), slot `i` the one at heap index `i`. */
  private shrink(): void {
    const n = this.count;
    const capacity = Math.max(INITIAL_CAPACITY, n * 2);
    const due = new Float64Array(capacity);
    const seq = new Float64Array(capacity);
    const pos = new Int32Array(capacity);
    const heap = new Int32Array(capacity);
    const keyOf: Array<string | undefined> = [];
    const actors: Array<string | undefined> = [];
    for (let i = 0; i < n; i++) {
      const slot = this.heap[i] as number;
      const key = this.keyOf[slot] as string;
      due[i] = this.due[slot] as number;
      seq[i] = this.seq[slot] as number;
      heap[i] = i;
      pos[i] = i;
      keyOf.push(key);
      actors.push(this.actors[slot]);
      this.slotOf.set(key, i);
    }
    this.due = due;
    this.seq = seq;
    this.pos = pos;
    this.heap = heap;
    this.keyOf = keyOf;
    this.actors = actors;
    this.freeSlots = new Int32Array(capacity);
    this.freeCount = 0;
    this.nextSlot = n;
  }

  private less(a: number, b: number): boolean {
    const da = this.due[a] as number;
    const db = this.due[b] as number;
    return da < db || (da === db && (this.seq[a] as number) < (this.seq[b] as number));
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const slot = heap[i] as number;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as number;
      if (!this.less(slot, p)) break;
      heap[i] = p;
      this.pos[p] = i;
      i = parent;
    }
    heap[i] = slot;
    this.pos[slot] = i;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = this.count;
    const slot = heap[i] as number;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && this.less(heap[right] as number, heap[left] as number)) child = right;
      const c = heap[child] as number;
      if (!this.less(c, slot)) break;
      heap[i] = c;
      this.pos[c] = i;
      i = child;
    }
    heap[i] = slot;
    this.pos[slot] = i;
  }
}
