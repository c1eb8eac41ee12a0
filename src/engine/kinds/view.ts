import type { Expression } from '../../shared/index.js';

// The words and boxes a scenario kind describes itself with, for the dashboard: plain text, no IO.

/** An expression as the dashboard shows it (template parameters filled in). */
export type Show = (e: Expression) => string;

/** What a box of the diagram stands for; the page styles each differently. */
export type BoxRole = 'event' | 'absent' | 'condition' | 'window' | 'timer' | 'action' | 'emit';

/** One box of a scenario's flow, left to right; `arrow` labels the arrow that leads into it. */
export interface DiagramBox {
  role: BoxRole;
  title: string;
  lines: string[];
  arrow?: string;
}

/** A kind's reading of a plan: one plain sentence (when the scenario fires) and the boxes leading to it. */
export interface KindDiagram {
  summary: string;
  flow: DiagramBox[];
}

/** A group part-way through matching, in plain words (`2 of 3 within 2m`, `waiting for connected`). */
export interface MatchProgress {
  progress: string;
  /** The earliest event still counted, when that is known. */
  sinceAt?: number;
  /** When the group's timer falls due, if it has one. */
  dueAt?: number;
}

/**
 * Where one group stands, as its kind explains it: plain words (`3 of 5 within 10m`, `waiting for connected until
 * …`, `avg 61.2 over the 5m window`) and the figures behind them, for tools.
 */
export interface GroupExplanation {
  state: string;
  figures: Record<string, number | string | boolean | null>;
  /** The earliest event still counted. */
  sinceAt?: number;
  /** When the group's timer falls due (a silence deadline, an absent step's deadline). */
  dueAt?: number;
  /** Until when the group can still complete as it stands (the oldest event counted leaves its window then). */
  untilAt?: number;
}

/** A time in the words of an explanation (ISO 8601, UTC). */
export function timeText(ms: number): string {
  return new Date(ms).toISOString();
}

export function eventBox(events: readonly string[], where: string | undefined): DiagramBox {
  const lines = events.length > 1 ? [`any of ${listText(events)}`] : [];
  if (where !== undefined) lines.push(`where ${where}`);
  return { role: 'event', title: events.length > 1 ? 'event' : (events[0] ?? ''), lines };
}

export function eventsText(events: readonly string[]): string {
  return events.join(' or ');
}

export function listText(items: readonly string[]): string {
  if (items.length <= 1) return items[0] ?? '';
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1] ?? ''}`;
}

const UNITS: ReadonlyArray<[string, number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
];

/** `90000` → `1m 30s`: durations as rule authors write them. */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [unit, size] of UNITS) {
    // `24h` reads as rule authors write it; days only from two of them.
    if (unit === 'd' && rest < 2 * size) continue;
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.join(' ');
}
