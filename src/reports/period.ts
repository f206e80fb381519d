/**
 * Periods of whole days in the programme's time zone (DEFAULT_TIMEZONE): the dashboard's from/to
 * (inclusive calendar dates) and the weekly report's Monday-to-Sunday weeks, as half-open UTC
 * instants [from, to) for the queries.
 */
import { HttpError } from '../http/errors.js';

export interface Period {
  /** First day, YYYY-MM-DD (local). */
  fromDate: string;
  /** Last day, YYYY-MM-DD (local), inclusive. */
  toDate: string;
  /** Local midnight starting the first day. */
  from: Date;
  /** Local midnight after the last day. */
  to: Date;
  /** Every day of the period, YYYY-MM-DD. */
  days: string[];
  timezone: string;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
export const MAX_DAYS = 366;

export function isDate(s: string): boolean {
  const m = DATE.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]);
}

/** YYYY-MM-DD plus n days (calendar arithmetic, no time zone involved). */
export function addDays(date: string, n: number): string {
  const m = DATE.exec(date)!;
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + n)).toISOString().slice(0, 10);
}

/** The calendar date of an instant in a time zone. */
export function localDate(at: Date, timezone: string): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(at);
}

/** How far the zone's wall clock is ahead of UTC at an instant, in ms. */
function offsetMs(timezone: string, at: Date): number {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(at);
  const get = (t: string) => Number(parts.find((p) => p.type === t)!.value);
  const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return wall - Math.floor(at.getTime() / 1000) * 1000;
}

/** The instant a calendar date begins in a time zone. */
export function startOfDay(date: string, timezone: string): Date {
  const m = DATE.exec(date)!;
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  let t = wall - offsetMs(timezone, new Date(wall));
  t = wall - offsetMs(timezone, new Date(t)); // again, in case the first guess crossed a DST change
  return new Date(t);
}

function span(fromDate: string, toDate: string, timezone: string): Period {
  const days: string[] = [];
  for (let d = fromDate; d <= toDate; d = addDays(d, 1)) days.push(d);
  return { fromDate, toDate, from: startOfDay(fromDate, timezone), to: startOfDay(addDays(toDate, 1), timezone), days, timezone };
}

/**
 * The dashboard's period from its inputs: inclusive dates, by default the last 7 days up to today.
 * Bad input is refused with the field it concerns.
 */
export function periodFrom(input: { from?: string; to?: string }, timezone: string, now = new Date()): Period {
  const errors: Record<string, string> = {};
  const from = (input.from ?? '').trim();
  const to = (input.to ?? '').trim();
  if (from && !isDate(from)) errors.from = 'must be a date as YYYY-MM-DD';
  if (to && !isDate(to)) errors.to = 'must be a date as YYYY-MM-DD';
  if (Object.keys(errors).length) throw new HttpError(400, 'validation_failed', 'The period is not valid', errors);
  const toDate = to || (from ? addDays(from, 6) : localDate(now, timezone));
  const fromDate = from || addDays(toDate, -6);
  if (fromDate > toDate) throw new HttpError(400, 'validation_failed', 'The period is not valid', { to: 'must be on or after the first day' });
  const p = span(fromDate, toDate, timezone);
  if (p.days.length > MAX_DAYS) throw new HttpError(400, 'validation_failed', 'The period is not valid', { to: `the period may be at most ${MAX_DAYS} days` });
  return p;
}

/** The Monday of the week a date falls in. */
export function mondayOf(date: string): string {
  const m = DATE.exec(date)!;
  const dow = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))).getUTCDay(); // 0 = Sunday
  return addDays(date, -((dow + 6) % 7));
}

/** The Monday-to-Sunday week starting on (or containing) `date`. */
export function weekOf(date: string, timezone: string): Period {
  const monday = mondayOf(date);
  return span(monday, addDays(monday, 6), timezone);
}

/** The last complete week before `now` (what the weekly job reports on Monday morning). */
export function lastCompleteWeek(timezone: string, now = new Date()): Period {
  return weekOf(addDays(mondayOf(localDate(now, timezone)), -7), timezone);
}

/** ISO 8601 week label, e.g. 2026-W47, of the week starting on a Monday. */
export function isoWeekLabel(monday: string): string {
  const thursday = addDays(monday, 3);
  const year = Number(thursday.slice(0, 4));
  const jan4 = `${year}-01-04`;
  const week1 = mondayOf(jan4);
  const days = (Date.parse(monday + 'T00:00:00Z') - Date.parse(week1 + 'T00:00:00Z')) / 86_400_000;
  return `${year}-W${String(Math.floor(days / 7) + 1).padStart(2, '0')}`;
}
