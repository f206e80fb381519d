/**
 * Quiet hours in a contact's own time zone: between `start` and `end` local time (default 20:00 to
 * 08:00, across midnight) a broadcast's message waits. Pure time arithmetic over IANA time zones
 * with Intl; no database.
 */

export interface QuietHours {
  /** "HH:MM" */
  start: string;
  end: string;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(tz, f);
  }
  return f;
}

export function isTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

export interface LocalTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The wall-clock time in `tz` at `instant`. */
export function localTime(instant: Date, tz: string): LocalTime {
  const parts: Record<string, number> = {};
  for (const p of formatter(tz).formatToParts(instant)) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return { year: parts.year, month: parts.month, day: parts.day, hour: parts.hour === 24 ? 0 : parts.hour, minute: parts.minute, second: parts.second };
}

/** Milliseconds `tz` is ahead of UTC at `instant`. */
function offsetMs(instant: Date, tz: string): number {
  const l = localTime(instant, tz);
  return Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second) - Math.floor(instant.getTime() / 1000) * 1000;
}

/**
 * The instant at which the wall clock in `tz` shows the given time. A time skipped by a daylight-saving
 * change resolves to the first instant after the gap.
 */
export function zonedTime(year: number, month: number, day: number, hour: number, minute: number, tz: string): Date {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  let guess = wall - offsetMs(new Date(wall), tz);
  const second = wall - offsetMs(new Date(guess), tz);
  if (second !== guess) guess = Math.max(guess, second);
  return new Date(guess);
}

export const minutesOf = (hhmm: string): number => {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
};

export function parseQuietHours(start: string | null | undefined, end: string | null | undefined): QuietHours | null {
  if (!start || !end || start === end) return null;
  return { start, end };
}

/** Whether `instant` falls in the quiet hours of `tz`. */
export function inQuietHours(instant: Date, tz: string, q: QuietHours): boolean {
  const l = localTime(instant, tz);
  const now = l.hour * 60 + l.minute;
  const s = minutesOf(q.start);
  const e = minutesOf(q.end);
  return s < e ? now >= s && now < e : now >= s || now < e;
}

/** When quiet hours end for a message due at `instant` in `tz`, or null when it is not quiet there. */
export function quietUntil(instant: Date, tz: string, q: QuietHours | null): Date | null {
  if (!q || !inQuietHours(instant, tz, q)) return null;
  const l = localTime(instant, tz);
  const now = l.hour * 60 + l.minute;
  const e = minutesOf(q.end);
  // Quiet hours that started this evening end tomorrow; those after midnight end today.
  const tomorrow = now >= e;
  const day = new Date(Date.UTC(l.year, l.month - 1, l.day + (tomorrow ? 1 : 0)));
  return zonedTime(day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), Math.floor(e / 60), e % 60, tz);
}

/** The next instant after `after` at which `tz` shows hh:mm, `stepDays` days apart (recurring broadcasts). */
export function nextLocalTime(after: Date, tz: string, hhmm: string, stepDays: number, from: Date): Date {
  const m = minutesOf(hhmm);
  const start = localTime(from, tz);
  // Jump close to `after` in whole steps, then walk (a few steps at most).
  const skip = Math.max(0, Math.floor((after.getTime() - from.getTime()) / (stepDays * 86_400_000)) - 1);
  let day = new Date(Date.UTC(start.year, start.month - 1, start.day) + skip * stepDays * 86_400_000);
  for (let i = 0; i < 400; i++) {
    const at = zonedTime(day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), Math.floor(m / 60), m % 60, tz);
    if (at.getTime() > after.getTime()) return at;
    day = new Date(day.getTime() + stepDays * 86_400_000);
  }
  throw new Error('no next occurrence within 400 steps');
}

/** "HH:MM" of an instant in `tz`. */
export function hhmmIn(instant: Date, tz: string): string {
  const l = localTime(instant, tz);
  return `${String(l.hour).padStart(2, '0')}:${String(l.minute).padStart(2, '0')}`;
}
