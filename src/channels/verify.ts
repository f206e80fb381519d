/** Webhook helpers the adapters share: constant-time comparison and reading loosely typed payloads. */
import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Compares two secrets in constant time. Both sides are hashed first so that neither the content
 * nor the length of the expected value leaks through timing.
 */
export function safeEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b) && given.length === expected.length;
}

export function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name] ?? headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A non-empty string, or undefined (numbers are accepted and turned into strings). */
export function str(v: unknown, max = 100_000): string | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string' || v.length === 0 || v.length > max) return undefined;
  return v;
}

/** A provider's id for a message: 1–200 printable characters (control characters never occur in real ids). */
export function providerId(v: unknown): string | undefined {
  const s = typeof v === 'number' && Number.isFinite(v) ? String(v) : v;
  if (typeof s !== 'string' || s.length === 0 || s.length > 200 || /[\u0000-\u001f\u007f]/.test(s)) return undefined;
  return s;
}

/** Seconds since the epoch (as WhatsApp sends them) to a Date; now when missing or absurd. */
export function fromEpochSeconds(v: unknown, now = new Date()): Date {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,12}$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n <= 0) return now;
  return plausible(new Date(n * 1000), now);
}

/** A provider's time, or ours when it is missing, before 2000 or more than a day ahead (a broken clock or a forged body). */
export function plausible(d: Date, now = new Date()): Date {
  const t = d.getTime();
  return Number.isNaN(t) || t < 946_684_800_000 || t > now.getTime() + 86_400_000 ? now : d;
}

/** A phone number as providers send it ("+51987654321", "51987654321") to E.164, or undefined. */
export function e164(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  const m = /^\+?([1-9]\d{5,14})$/.exec(s);
  return m ? '+' + m[1] : undefined;
}

/** Parses a form body; repeated names keep every value (Twilio signs each). */
export function parseForm(raw: string): { fields: Record<string, string>; pairs: [string, string][] } | undefined {
  try {
    const params = new URLSearchParams(raw);
    const pairs = [...params.entries()];
    const fields: Record<string, string> = {};
    for (const [k, v] of pairs) if (!(k in fields)) fields[k] = v;
    return { fields, pairs };
  } catch {
    return undefined;
  }
}
