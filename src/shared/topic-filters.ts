/** Filters of one shape: as many levels, `+` at the same ones, ending in `#` or not. */
interface Shape {
  readonly signature: string;
  readonly levels: number;
  readonly hash: boolean;
  /** Which levels are the filter's own (neither `+` nor `#`), in order. */
  readonly literals: readonly number[];
  /** The own levels come first: a topic's key is its beginning, looked up without walking the filters. */
  readonly prefix: boolean;
  /** Each filter by its own levels joined with `/`, with how often it was added. */
  readonly keys: Map<string, number>;
  /** The keys, when not `prefix`: compared with a topic in place while there are few. */
  readonly list: string[];
  /**
   * When `prefix`: the filters' last own level, with how many filters end their own levels with it, and the distinct
   * ones in a list. A topic whose level there is none of them (a device's event, against the devices' command
   * filters) is passed over without making its beginning as a string.
   */
  readonly lasts: Map<string, number>;
  readonly lastList: string[];
}

/** Past this many filters of one shape, a topic's key is made and looked up rather than compared with each. */
const COMPARED_IN_PLACE = 16;

/**
 * MQTT topic filters, each counted as often as it was added, grouped by shape: whether any of them could match a
 * topic takes one lookup per shape (there are few: a device's `devices/{id}/commands/#` are all one), and makes
 * at most the topic's beginning as a string. A filter costs a map entry and its key.
 *
 * The answer errs only towards a match: a filter starting with a wildcard matches a topic starting with `$` (as
 * aedes' router does; its clients' deliveries leave those out [MQTT-4.7.2-1]).
 */
export class TopicFilterSet {
  readonly #shapes: Shape[] = [];
  #size = 0;

  /** Filters held, each as often as it was added. */
  get size(): number {
    return this.#size;
  }

  add(filter: string): void {
    const levels = filter.split('/');
    const signature = signatureOf(levels);
    let shape = this.#shapes.find((s) => s.signature === signature);
    if (shape === undefined) this.#shapes.push((shape = shapeOf(signature, levels)));
    const key = keyOf(levels, shape.literals);
    const count = shape.keys.get(key) ?? 0;
    shape.keys.set(key, count + 1);
    if (count === 0 && !shape.prefix) shape.list.push(key);
    if (shape.prefix && shape.literals.length > 0) {
      const last = levels[shape.literals.length - 1] as string;
      const lasts = shape.lasts.get(last) ?? 0;
      shape.lasts.set(last, lasts + 1);
      if (lasts === 0) shape.lastList.push(last);
    }
    this.#size += 1;
  }

  /** Takes one of `filter` away; false when the set held none. */
  delete(filter: string): boolean {
    const levels = filter.split('/');
    const signature = signatureOf(levels);
    const at = this.#shapes.findIndex((s) => s.signature === signature);
    const shape = this.#shapes[at];
    if (shape === undefined) return false;
    const key = keyOf(levels, shape.literals);
    const count = shape.keys.get(key);
    if (count === undefined) return false;
    this.#size -= 1;
    if (shape.prefix && shape.literals.length > 0) {
      const last = levels[shape.literals.length - 1] as string;
      const lasts = shape.lasts.get(last) ?? 0;
      if (lasts > 1) shape.lasts.set(last, lasts - 1);
      else {
        shape.lasts.delete(last);
        shape.lastList.splice(shape.lastList.indexOf(last), 1);
      }
    }
    if (count > 1) {
      shape.keys.set(key, count - 1);
      return true;
    }
    shape.keys.delete(key);
    if (!shape.prefix) shape.list.splice(shape.list.indexOf(key), 1);
    if (shape.keys.size === 0) this.#shapes.splice(at, 1);
    return true;
  }

  /** Whether a filter held could match `topic` [MQTT-4.7.1]. */
  matchesAny(topic: string): boolean {
    if (this.#size === 0) return false;
    let levels = 1;
    for (let i = topic.indexOf('/'); i >= 0; i = topic.indexOf('/', i + 1)) levels += 1;
    for (const shape of this.#shapes) {
      // `#` matches the rest, the parent level too: `a/#` matches `a` [MQTT-4.7.1-2].
      if (shape.hash ? levels < shape.levels - 1 : levels !== shape.levels) continue;
      if (shape.prefix) {
        const own = shape.literals.length;
        if (
          own > 0 &&
          shape.lastList.length <= COMPARED_IN_PLACE &&
          !levelIsOneOf(topic, own - 1, shape.lastList)
        )
          continue;
        if (shape.keys.has(beginning(topic, own, levels))) return true;
      } else if (shape.list.length <= COMPARED_IN_PLACE) {
        for (const key of shape.list) if (sameLevels(topic, key, shape.literals)) return true;
      } else if (shape.keys.has(keyOf(topic.split('/'), shape.literals))) return true;
    }
    return false;
  }
}

function signatureOf(levels: readonly string[]): string {
  let signature = '';
  for (const level of levels) signature += level === '+' || level === '#' ? level : '.';
  return signature;
}

function shapeOf(signature: string, levels: readonly string[]): Shape {
  const hash = levels[levels.length - 1] === '#';
  const literals: number[] = [];
  levels.forEach((level, i) => {
    if (level !== '+' && !(level === '#' && i === levels.length - 1)) literals.push(i);
  });
  const prefix = literals.every((at, i) => at === i);
  return {
    signature,
    levels: levels.length,
    hash,
    literals,
    prefix,
    keys: new Map(),
    list: [],
    lasts: new Map(),
    lastList: [],
  };
}

/** Whether level `level` of `topic` (which has more levels than that) is one of `values`, compared in place. */
function levelIsOneOf(topic: string, level: number, values: readonly string[]): boolean {
  let start = 0;
  for (let i = 0; i < level; i++) start = topic.indexOf('/', start) + 1;
  let end = topic.indexOf('/', start);
  if (end === -1) end = topic.length;
  for (let i = 0; i < values.length; i++) {
    const value = values[i] as string;
    if (value.length === end - start && topic.startsWith(value, start)) return true;
  }
  return false;
}

function keyOf(levels: readonly string[], literals: readonly number[]): string {
  return literals.map((at) => levels[at]).join('/');
}

/** The first `count` levels of `topic` (of `levels` in all), with the `/` between them. */
function beginning(topic: string, count: number, levels: number): string {
  if (count === levels) return topic;
  let end = -1;
  for (let i = 0; i < count; i++) end = topic.indexOf('/', end + 1);
  return count === 0 ? '' : topic.slice(0, end);
}

/** Whether the levels of `topic` at `literals` are those of `key`, compared in place. */
function sameLevels(topic: string, key: string, literals: readonly number[]): boolean {
  let level = 0;
  let at = 0;
  let k = 0;
  for (let i = 0; i < literals.length; i++) {
    const want = literals[i] as number;
    for (; level < want; level++) at = topic.indexOf('/', at) + 1;
    // Compare this level with the key's next one, up to a `/` or the end of each.
    for (;;) {
      const t = at < topic.length ? topic.charCodeAt(at) : SLASH;
      const c = k < key.length ? key.charCodeAt(k) : SLASH;
      if (t !== c) return false;
      if (t === SLASH) break;
      at += 1;
      k += 1;
    }
    at += 1;
    k += 1;
    level += 1;
  }
  return true;
}

const SLASH = 0x2f;

/** The topic filters each client holds, and whether any of them could match a topic. */
export class ClientFilters {
  readonly #byClient = new Map<string, Set<string>>();
  readonly #filters = new TopicFilterSet();

  add(clientId: string, filters: Iterable<string>): void {
    let held = this.#byClient.get(clientId);
    if (held === undefined) this.#byClient.set(clientId, (held = new Set()));
    for (const filter of filters) {
      if (held.has(filter)) continue;
      held.add(filter);
      this.#filters.add(filter);
    }
  }

  remove(clientId: string, filters: Iterable<string>): void {
    const held = this.#byClient.get(clientId);
    if (held === undefined) return;
    for (const filter of filters) if (held.delete(filter)) this.#filters.delete(filter);
    if (held.size === 0) this.#byClient.delete(clientId);
  }

  clean(clientId: string): void {
    const held = this.#byClient.get(clientId);
    if (held === undefined) return;
    this.#byClient.delete(clientId);
    for (const filter of held) this.#filters.delete(filter);
  }

  /** Whether a filter of some client could match `topic` (see TopicFilterSet). */
  matchesAny(topic: string): boolean {
    return this.#filters.matchesAny(topic);
  }
}
