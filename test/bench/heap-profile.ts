import { readFile } from 'node:fs/promises';
import { area, short } from './cpu-profile.js';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children?: HeapNode[];
}

/**
 * Bytes allocated by function (self) and by area, and by function including what it called, of a sampling
 * heap profile written by alloc-probe.ts (collected objects kept), per event: where each event's bytes go.
 */
export async function summarizeHeapProfile(file: string, events: number, top = 25): Promise<string> {
  const { head } = JSON.parse(await readFile(file, 'utf8')) as { head: HeapNode };
  const selfByFn = new Map<string, number>();
  const selfByArea = new Map<string, number>();
  const inclusiveByFn = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, bytes: number): void => {
    m.set(k, (m.get(k) ?? 0) + bytes);
  };
  const nameOf = ({ callFrame: { functionName, url, lineNumber } }: HeapNode): string =>
    `${functionName || '(anonymous)'} ${short(url)}${url ? `:${lineNumber + 1}` : ''}`;
  let total = 0;
  const walk = (node: HeapNode, stack: string[]): void => {
    const name = nameOf(node);
    const here = stack.includes(name) ? stack : [...stack, name];
    if (node.selfSize > 0) {
      total += node.selfSize;
      add(selfByFn, name, node.selfSize);
      add(selfByArea, area(node.callFrame.url), node.selfSize);
      for (const f of here) add(inclusiveByFn, f, node.selfSize);
    }
    for (const c of node.children ?? []) walk(c, here);
  };
  walk(head, []);
  const perEvent = (bytes: number): string => (bytes / events).toFixed(0);
  const rows = (m: Map<string, number>, n: number, keep: (k: string) => boolean = () => true): string =>
    [...m]
      .filter(([k]) => keep(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, b]) => `| ${perEvent(b)} | ${((b / total) * 100).toFixed(1)}% | ${k.replace(/\|/g, '\\|')} |`)
      .join('\n');
  return [
    `### Heap sampling profile ${file}`,
    '',
    `${(total / 1_048_576).toFixed(0)} MB sampled over ${events} device events: ${perEvent(total)} B per event.`,
    '',
    '| B/event | share | allocating function (self) |',
    '| --- | --- | --- |',
    rows(selfByFn, top),
    '',
    '| B/event | share | area (self) |',
    '| --- | --- | --- |',
    rows(selfByArea, 15),
    '',
    '| B/event | share | function (inclusive), ours and the broker |',
    '| --- | --- | --- |',
    rows(inclusiveByFn, top, (k) =>
      / (dist\/|node_modules\/(aedes|mqtt-packet|mqemitter|classic-level|cbor-x|pino))/.test(k),
    ),
    '',
  ].join('\n');
}
