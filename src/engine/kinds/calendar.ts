/**
 * Calendar windows: `every: 1d, at: "00:00", tz: Europe/Berlin` holds the events since the latest boundary (today
 * since midnight in Berlin), not those of the last 24 hours. Boundaries are wall-clock times in the zone, found
 * with Intl, so daylight saving time moves them as a person there would expect: a day is 23 or 25 hours long
 * when the clocks change. Pure: the same instant and zone give the same boundary, live, after a restore, in replay.
 * The engine runs on gateway time; the wall clock's offset over it comes in with each input (`windowStartAt`).
 */

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** A calendar window: boundaries every `everyMs` of wall-clock time in `tz`, starting each day at `atMs`. */
export interface CalendarWindow {
  /** One day, or whole hours that divide a day (`6h`: 00:00, 06:00, 12:00, 18:00 after `at`). */
  everyMs: number;
  /** The time of day of the first boundary, in ms after local midnight (`"00:00"`: 0). */
  atMs: number;
  /** An IANA time zone (`Europe/Berlin`, `UTC`). */
  tz: string;
}

export type CalendarResult = { ok: true; window: CalendarWindow } | { ok: false; problem: string };

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, f);
  }
  return f;
}

/** The wall-clock time in `tz` at `instant`, as ms on a UTC scale (so that date arithmetic is plain arithmetic). */
function wallOf(instant: number, tz: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(tz).formatToParts(instant))
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const { year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0 } = parts;
  const ms = ((instant % 1000) + 1000) % 1000;
  return Date.UTC(year, month - 1, day, hour, minute, second) + ms;
}

/**
 * The instant at which the wall clock of `tz` shows `wall`. A wall time the clocks skip (spring forward) is read
 * as that long after the change (02:30 is 03:30 summer time, as Temporal's "compatible" does); one they show twice
 * (fall back) is the first.
 */
function instantOf(wall: number, tz: string): number {
  // Offsets within a day of the wall time: the earlier one first, so that a time shown twice gives the first.
  const offsets = [
    ...new Set([wallOf(wall - DAY_MS, tz) - (wall - DAY_MS), wallOf(wall + DAY_MS, tz) - (wall + DAY_MS)]),
  ];
  const candidates = offsets.map((o) => wall - o).filter((t) => wallOf(t, tz) === wall);
  if (candidates.length > 0) return Math.min(...candidates);
  // In a gap: the clocks jumped over `wall`.
  return Math.max(...offsets.map((o) => wall - o));
}

/** The start of the calendar window that holds `instant`: the latest boundary at or before it. */
export function windowStart(cal: CalendarWindow, instant: number): number {
  const wall = wallOf(instant, cal.tz);
  const dayStart = Math.floor(wall / DAY_MS) * DAY_MS;
  const k = Math.floor((wall - dayStart - cal.atMs) / cal.everyMs);
  // Around a change of the clocks the wall time misleads by up to an hour or two (in the hour shown twice, the
  // next boundary may have passed already; in the hour skipped, this one may not have come): the latest of the
  // neighbouring boundaries at or before `instant` is meant.
  for (let j = k + 1; j >= k - 2; j--) {
    const boundary = instantOf(dayStart + cal.atMs + j * cal.everyMs, cal.tz);
    if (boundary <= instant) return boundary;
  }
  return instantOf(dayStart + cal.atMs + (k - 3) * cal.everyMs, cal.tz);
}

/**
 * The start, in gateway time, of the calendar window that holds gateway time `gatewayMs`, its boundaries where the
 * wall clock shows them: wall time is gateway time plus `wallOffsetMs` (see src/runtime/clock.ts), so a gateway that
 * booted in 1970 and was then stepped by NTP counts the real day, not a day of 1970.
 */
export function windowStartAt(cal: CalendarWindow, gatewayMs: number, wallOffsetMs: number): number {
  return windowStart(cal, gatewayMs + wallOffsetMs) - wallOffsetMs;
}

/** Reads `every`, `at` and `tz`; `every` must be one day, or whole hours that divide a day. */
export function calendarWindow(everyMs: number, at: string, tz: string): CalendarResult {
  if (everyMs !== DAY_MS && (everyMs % HOUR_MS !== 0 || DAY_MS % everyMs !== 0)) {
    return {
      ok: false,
      problem: 'every: a calendar window is 1d, or whole hours that divide a day (1h, 6h, 12h)',
    };
  }
  const m = /^(\d{1,2}):(\d{2})$/.exec(at);
  const hours = Number(m?.[1]);
  const minutes = Number(m?.[2]);
  if (!m || hours > 23 || minutes > 59) {
    return {
      ok: false,
      problem: `at: expected a time of day such as "00:00" or "06:30", not ${JSON.stringify(at)}`,
    };
  }
  const atMs = hours * HOUR_MS + minutes * 60_000;
  if (atMs >= everyMs) {
    return { ok: false, problem: `at: ${at} is not within the first ${everyMs / HOUR_MS}h of the day` };
  }
  try {
    formatter(tz);
  } catch {
    return {
      ok: false,
      problem: `tz: ${JSON.stringify(tz)} is not a time zone (such as Europe/Berlin or UTC)`,
    };
  }
  return { ok: true, window: { everyMs, atMs, tz } };
}

/** `every 1d at 00:00 (Europe/Berlin)`. */
export function calendarLabel(cal: CalendarWindow): string {
  const hh = String(Math.floor(cal.atMs / HOUR_MS)).padStart(2, '0');
  const mm = String(Math.floor((cal.atMs % HOUR_MS) / 60_000)).padStart(2, '0');
  const every = cal.everyMs === DAY_MS ? '1d' : `${cal.everyMs / HOUR_MS}h`;
  return `every ${every} at ${hh}:${mm} (${cal.tz})`;
}
