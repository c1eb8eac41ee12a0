import type { Scenario } from './types.js';

/**
 * Finds the loops that `emit` can close: scenario A emits an event B listens to, and B (perhaps through
 * others) emits what A listens to. One cycle is spelled out per loop, as scenario ids (`a -> b -> a`).
 */
export function findEmitCycles(scenarios: readonly Scenario[]): string[][] {
  const listeners = new Map<string, Scenario[]>();
  for (const s of scenarios)
    for (const type of s.listens) {
      const list = listeners.get(type) ?? [];
      list.push(s);
      listeners.set(type, list);
    }
  const next = (s: Scenario): Scenario[] => (s.emit ? (listeners.get(s.emit.event) ?? []) : []);

  // Tarjan's strongly connected components, iteratively so that long chains cannot overflow the stack.
  const index = new Map<Scenario, number>();
  const low = new Map<Scenario, number>();
  const onStack = new Set<Scenario>();
  const stack: Scenario[] = [];
  const components: Scenario[][] = [];
  let counter = 0;
  for (const root of scenarios) {
    if (index.has(root)) continue;
    const work: Array<{ node: Scenario; edges: Scenario[]; i: number }> = [];
    const enter = (node: Scenario): void => {
      index.set(node, counter);
      low.set(node, counter);
      counter++;
      stack.push(node);
      onStack.add(node);
      work.push({ node, edges: next(node), i: 0 });
    };
    enter(root);
    while (work.length > 0) {
      const top = work[work.length - 1] as { node: Scenario; edges: Scenario[]; i: number };
      const edge = top.edges[top.i++];
      if (edge !== undefined) {
        if (!index.has(edge)) enter(edge);
        else if (onStack.has(edge)) low.set(top.node, Math.min(low.get(top.node) ?? 0, index.get(edge) ?? 0));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node) ?? 0, low.get(top.node) ?? 0));
      if (low.get(top.node) === index.get(top.node)) {
        const component: Scenario[] = [];
        let member: Scenario | undefined;
        do {
          member = stack.pop();
          if (member) {
            onStack.delete(member);
            component.push(member);
          }
        } while (member && member !== top.node);
        components.push(component);
      }
    }
  }

  const cycles: string[][] = [];
  for (const component of components) {
    const members = new Set(component);
    const start = [...component].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))[0];
    if (!start) continue;
    if (component.length === 1 && !next(start).includes(start)) continue;
    // Shortest way back to the start within the component, by breadth-first search.
    const from = new Map<Scenario, Scenario>();
    const queue: Scenario[] = [start];
    let found = false;
    for (let q = 0; q < queue.length && !found; q++) {
      const node = queue[q] as Scenario;
      for (const n of next(node)) {
        if (!members.has(n)) continue;
        if (n === start) {
          from.set(start, node);
          found = true;
          break;
        }
        if (!from.has(n)) {
          from.set(n, node);
          queue.push(n);
        }
      }
    }
    const path: string[] = [start.id];
    let at = from.get(start);
    while (at !== undefined && at !== start) {
      path.push(at.id);
      at = from.get(at);
    }
    path.push(start.id);
    // The walk went backwards from the start; reverse the inner part so arrows follow the emits.
    cycles.push([start.id, ...path.slice(1, -1).reverse(), start.id]);
  }
  return cycles;
}
