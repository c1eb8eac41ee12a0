/** One level of a filter tree: the filters that end here, and the levels below. */
interface FilterNode {
  /** Filters that end at this level. */
  count: number;
  /** Filters that end at this level or below it. */
  size: number;
  readonly children: Map<string, FilterNode>;
}

/**
 * MQTT topic filters, each counted as often as it was added, in a tree of their levels: whether any of them could
 * match a topic is answered by walking the topic's levels once, without a list of the filters that match.
 *
 * The answer errs only towards a match: `+` matches an empty level and a filter starting with a wildcard matches
 * a topic starting with `$` (as aedes' router does; its clients' deliveries leave those out [MQTT-4.7.2-1]).
 */
export class TopicFilterSet {
  readonly #root: FilterNode = node();

  /** Filters held, each as often as it was added. */
  get size(): number {
    return this.#root.size;
  }

  add(filter: string): void {
    let at = this.#root;
    at.size += 1;
    for (const level of filter.split('/')) {
      let next = at.children.get(level);
      if (next === undefined) at.children.set(level, (next = node()));
      next.size += 1;
      at = next;
    }
    at.count += 1;
  }

  /** Takes one of `filter` away; false when the set held none. */
  delete(filter: string): boolean {
    const path = [this.#root];
    let at = this.#root;
    const levels = filter.split('/');
    for (const level of levels) {
      const next = at.children.get(level);
      if (next === undefined) return false;
      path.push(next);
      at = next;
    }
    if (at.count === 0) return false;
    at.count -= 1;
    for (const passed of path) passed.size -= 1;
    // Levels no filter goes through any more are cut off, so that a walk never enters them.
    for (let i = levels.length; i > 0; i--) {
      if ((path[i] as FilterNode).size > 0) break;
      (path[i - 1] as FilterNode).children.delete(levels[i - 1] as string);
    }
    return true;
  }

  /** Whether a filter held could match `topic` [MQTT-4.7.1]. */
  matchesAny(topic: string): boolean {
    return this.#root.size > 0 && matchFrom(this.#root, topic, 0);
  }
}

function node(): FilterNode {
  return { count: 0, size: 0, children: new Map() };
}

/** From `at`, whether the levels of `topic` from index `pos` on reach a filter's end; past its end: `pos > length`. */
function matchFrom(at: FilterNode, topic: string, pos: number): boolean {
  // `#` matches the rest, the parent level too: `a/#` matches `a` [MQTT-4.7.1-2].
  if (at.children.has('#')) return true;
  if (pos > topic.length) return at.count > 0;
  const slash = topic.indexOf('/', pos);
  const end = slash < 0 ? topic.length : slash;
  const exact = at.children.get(topic.slice(pos, end));
  if (exact !== undefined && matchFrom(exact, topic, end + 1)) return true;
  const one = at.children.get('+');
  return one !== undefined && matchFrom(one, topic, end + 1);
}

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
