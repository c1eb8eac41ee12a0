import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a function's code lives, coarsely: a package, a folder of ours, or Node itself. */
export function area(url: string): string {
  if (url === '') return '(native / V8)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] ?? url;
  const ours = /\/(src\/[^/]+|firmware-sim)\//.exec(url);
  if (ours) return ours[1] ?? url;
  if (url.startsWith('node:')) return url.split('/')[0] ?? url;
  return url;
}

export function short(url: string): string {
  return url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/');
}

/**
 * The `.cpuprofile` files of the newest process profiled in `dir`: node --cpu-prof writes one per thread, named
 * `CPU.<date>.<time>.<pid>.<thread id>.<n>.cpuprofile`; the main thread (id 0) first.
 */
export async function newestProfiles(dir: string): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) return [];
  const dated = await Promise.all(files.map(async (f) => ({ f, at: (await stat(join(dir, f))).mtimeMs })));
  dated.sort((a, b) => b.at - a.at);
  const pidOf = (f: string): string | undefined => f.split('.')[3];
  const pid = pidOf(dated[0]?.f ?? '');
  const threadOf = (f: string): number => Number(f.split('.')[4]);
  return dated
    .filter(({ f }) => pidOf(f) === pid)
    .map(({ f }) => f)
    .sort((a, b) => threadOf(a) - threadOf(b))
    .map((f) => join(dir, f));
}

/**
 * Self time by function and by area, and total (inclusive) time by area, of one `.cpuprofile`, as markdown:
 * enough to see where the gateway's time goes without opening a flame graph.
 */
export async function summarizeCpuProfile(file: string, top = 30): Promise<string> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;

  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const totalUs = profile.endTime - profile.startTime;
  const idleUs = [...selfUs]
    .filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)')
    .reduce((s, [, us]) => s + us, 0);

  const selfByFn = new Map<string, number>();
  const selfByArea = new Map<string, number>();
  const inclusiveByArea = new Map<string, number>();
  const inclusiveByFn = new Map<string, number>();
  const nameOf = (node: ProfileNode): string => {
    const { functionName, url, lineNumber } = node.callFrame;
    return `${functionName || '(anonymous)'} ${short(url)}${url ? `:${lineNumber + 1}` : ''}`;
  };
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === '(idle)') continue;
    const { url } = node.callFrame;
    const key = nameOf(node);
    selfByFn.set(key, (selfByFn.get(key) ?? 0) + us);
    selfByArea.set(area(url), (selfByArea.get(area(url)) ?? 0) + us);
    // Inclusive: each area, and each function, on the sample's stack gets the sample once.
    const seenAreas = new Set<string>();
    const seenFns = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at);
      if (!frame) break;
      const a = area(frame.callFrame.url);
      if (!seenAreas.has(a)) {
        seenAreas.add(a);
        inclusiveByArea.set(a, (inclusiveByArea.get(a) ?? 0) + us);
      }
      const f = nameOf(frame);
      if (!seenFns.has(f)) {
        seenFns.add(f);
        inclusiveByFn.set(f, (inclusiveByFn.get(f) ?? 0) + us);
      }
    }
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number): string => `${((us / busyUs) * 100).toFixed(1)}%`;
  const rows = (m: Map<string, number>, n: number): string =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `| ${pct(us)} | ${(us / 1_000).toFixed(0)} | ${k.replace(/\|/g, '\\|')} |`)
      .join('\n');
  return [
    `### CPU profile ${file}`,
    '',
    `${(totalUs / 1e6).toFixed(1)} s profiled, busy ${(busyUs / 1e6).toFixed(1)} s (${((busyUs / totalUs) * 100).toFixed(0)}%); shares are of the busy time.`,
    '',
    '| self | ms | function |',
    '| --- | --- | --- |',
    rows(selfByFn, top),
    '',
    '| self | ms | area |',
    '| --- | --- | --- |',
    rows(selfByArea, 20),
    '',
    '| total | ms | area (inclusive) |',
    '| --- | --- | --- |',
    rows(inclusiveByArea, 20),
    '',
    '| total | ms | function (inclusive), ours and the broker |',
    '| --- | --- | --- |',
    rows(
      new Map(
        [...inclusiveByFn].filter(([k]) =>
          / (dist\/|node_modules\/(aedes|mqtt-packet|classic-level|cbor-x|@marcbachmann))/.test(k),
        ),
      ),
      top,
    ),
    '',
  ].join('\n');
}

/** A `.cpuprofile`, as much of it as the breakdown reads (node:inspector's `Profiler.Profile` is one). */
export interface CpuProfileData {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string };
    children?: number[] | undefined;
  }>;
  samples?: number[] | undefined;
  timeDeltas?: number[] | undefined;
}

const YIELDS = 'yields, promises and timers of Node';

/** What a sample's time counts as: the first frame from the leaf up that names a part of recovery. */
const PARTS: ReadonlyArray<[string, (fn: string, url: string) => boolean]> = [
  ['garbage collection', (fn) => fn === '(garbage collector)'],
  ['decoding records', (fn) => fn === 'decodeRecord'],
  ['engine steps', (_fn, url) => url.includes('/src/engine/')],
  ['arbiter', (_fn, url) => url.includes('/src/actions/')],
  [
    'outboxes (replayed actions)',
    (_fn, url) => /\/src\/(store\/(outbox|command-outbox)|commands\/|app\/uplink|app\/device-edge)/.test(url),
  ],
  ['metrics', (_fn, url) => url.includes('prom-client') || url.includes('/src/runtime/metrics')],
  ['last-seen times', (_fn, url) => url.includes('/src/runtime/last-seen')],
  ['timers', (fn, url) => /\/src\/runtime\/(timer-driver|scheduler)/.test(url) || fn === 'armTimers'],
  ['checkpoint (read and write)', (_fn, url) => url.includes('/src/runtime/checkpoint')],
  ['journal (reading and writing)', (_fn, url) => /\/src\/runtime\/journal(-storage)?\.[jt]s/.test(url)],
  [
    'profiles and the store',
    (_fn, url) => /\/src\/store\/|classic-level|abstract-level|level-transcoder/.test(url),
  ],
  [
    'replay loop (journal tail, durable inputs, decision loop)',
    (_fn, url) => /\/src\/runtime\/(durable-inputs|journal-tail|decision-loop|recorded-context)/.test(url),
  ],
  [YIELDS, (fn, url) => /node:internal\/(timers|process\/task_queues)/.test(url) || fn === 'runMicrotasks'],
];

/** The profile's busy time by part of recovery, as markdown. */
export function recoveryBreakdown(profile: CpuProfileData): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const partOf = new Map<number, string>();
  const part = (id: number): string => {
    const known = partOf.get(id);
    if (known !== undefined) return known;
    let found: string | undefined;
    let ours = false;
    for (let at: number | undefined = id; at !== undefined && found === undefined; at = parent.get(at)) {
      const { functionName, url } = (byId.get(at) as CpuProfileData['nodes'][number]).callFrame;
      found = PARTS.find(([, test]) => test(functionName, url))?.[0];
      // Node's task queues run the broker's callbacks too: they count as the gateway's, not as a yield.
      if (found === YIELDS && ours) found = undefined;
      ours ||= /\/src\/|node_modules/.test(url);
    }
    found ??= ours ? 'the rest of the gateway (start, broker, storm, API)' : 'other (native, Node)';
    partOf.set(id, found);
    return found;
  };
  const us = new Map<string, number>();
  let busy = 0;
  const samples = profile.samples ?? [];
  samples.forEach((id, i) => {
    if (byId.get(id)?.callFrame.functionName === '(idle)') return;
    const d = profile.timeDeltas?.[i] ?? 0;
    busy += d;
    const p = part(id);
    us.set(p, (us.get(p) ?? 0) + d);
  });
  const rows = [...us]
    .sort((a, b) => b[1] - a[1])
    .map(([p, t]) => `| ${p} | ${(t / 1_000).toFixed(0)} | ${((t / busy) * 100).toFixed(1)}% |`);
  return ['| part | ms of CPU | share |', '| --- | --- | --- |', ...rows].join('\n');
}
