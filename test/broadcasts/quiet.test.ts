/** Quiet-hour arithmetic in IANA time zones, daylight-saving changes included (pure, no database). */
import { describe, expect, it } from 'vitest';
import { inQuietHours, nextLocalTime, quietUntil, zonedTime } from '../../src/broadcasts/quiet.js';

const q = { start: '20:00', end: '08:00' };

describe('quiet hours', () => {
  it('knows when it is quiet across midnight and when it ends', () => {
    expect(quietUntil(new Date('2026-03-11T02:00:00Z'), 'America/Lima', q)?.toISOString()).toBe('2026-03-11T13:00:00.000Z'); // 21:00 → 08:00 next day
    expect(quietUntil(new Date('2026-03-11T10:00:00Z'), 'America/Lima', q)?.toISOString()).toBe('2026-03-11T13:00:00.000Z'); // 05:00 → 08:00 same day
    expect(quietUntil(new Date('2026-03-11T13:00:00Z'), 'America/Lima', q)).toBeNull(); // 08:00 sharp: not quiet
    expect(quietUntil(new Date('2026-03-11T00:59:00Z'), 'America/Lima', q)).toBeNull(); // 19:59
    expect(inQuietHours(new Date('2026-03-11T01:00:00Z'), 'America/Lima', q)).toBe(true); // 20:00
    expect(quietUntil(new Date('2026-03-11T14:00:00Z'), 'Europe/Madrid', { start: '13:00', end: '16:00' })?.toISOString()).toBe('2026-03-11T15:00:00.000Z'); // a daytime window
  });

  it('ends at 08:00 local on the far side of a daylight-saving change', () => {
    // Madrid moves from UTC+1 to UTC+2 on 29 March 2026 at 02:00.
    expect(quietUntil(new Date('2026-03-28T22:00:00Z'), 'Europe/Madrid', q)?.toISOString()).toBe('2026-03-29T06:00:00.000Z');
    // New York moves back from UTC−4 to UTC−5 on 1 November 2026.
    expect(quietUntil(new Date('2026-11-01T02:00:00Z'), 'America/New_York', q)?.toISOString()).toBe('2026-11-01T13:00:00.000Z');
    expect(zonedTime(2026, 3, 29, 2, 30, 'Europe/Madrid').toISOString()).toBe('2026-03-29T01:30:00.000Z'); // a skipped time: just after the gap
  });

  it('finds the next daily or weekly occurrence at the same local time', () => {
    const first = new Date('2026-03-02T14:00:00Z'); // Monday 09:00 in Lima
    expect(nextLocalTime(first, 'America/Lima', '09:00', 1, first).toISOString()).toBe('2026-03-03T14:00:00.000Z');
    expect(nextLocalTime(new Date('2026-05-20T00:00:00Z'), 'America/Lima', '09:00', 7, first).toISOString()).toBe('2026-05-25T14:00:00.000Z'); // a Monday
    expect(nextLocalTime(new Date('2027-06-01T00:00:00Z'), 'America/Lima', '09:00', 1, first).toISOString()).toBe('2027-06-01T14:00:00.000Z'); // over a year later
  });
});
