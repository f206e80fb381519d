/** Reading values that the two databases hand back differently. */

/** SQLite returns dates as epoch milliseconds, PostgreSQL as Date. */
export function toDate(v: unknown): Date {
  if (v instanceof Date) return v;
  if (typeof v === 'number') return new Date(v);
  if (typeof v === 'string' && /^\d+$/.test(v)) return new Date(Number(v));
  return new Date(String(v));
}

export function toDateOrNull(v: unknown): Date | null {
  return v === null || v === undefined ? null : toDate(v);
}

/** SQLite returns booleans as 0/1. */
export function toBool(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 't' || v === 'true';
}

/** PostgreSQL returns count(*) and bigint as strings. */
export function toInt(v: unknown): number {
  return typeof v === 'number' ? v : Number(v ?? 0);
}
